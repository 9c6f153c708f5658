// Package api holds the HTTP wire types shared by the Coffer server and client (doc/PROTOCOL.md).
//
// JSON bodies; []byte fields are standard base64; IDs are lowercase hex strings. Every error
// response is an Error with an HTTP status from StatusOf(code).
package api

import (
	"fmt"

	"coffer"
)

// Prefix is the API version prefix of every endpoint except /healthz and /readyz.
const Prefix = "/v1"

// Code is an append-only enum of error codes.
type Code string

const (
	CodeBadRequest    Code = "bad_request"     // 400: malformed request, names the field
	CodeUnauthorized  Code = "unauthorized"    // 401: missing, expired or revoked session
	CodeLoginFailed   Code = "login_failed"    // 401: wrong credentials (never says which part)
	CodeForbidden     Code = "forbidden"       // 403
	CodeNotFound      Code = "not_found"       // 404
	CodeExists        Code = "exists"          // 409: name or account already exists
	CodeConflict      Code = "conflict"        // 409: head moved; body carries Current
	CodeTooLarge      Code = "too_large"       // 413: request body over the limit
	CodeQuota         Code = "quota_exceeded"  // 507
	CodeRateLimited   Code = "rate_limited"    // 429: Retry-After header set
	CodeInviteNeeded  Code = "invite_required" // 403: invite-only server
	CodeInvalidCommit Code = "invalid_commit"  // 422: commit breaks a format rule; names it
	CodeGone          Code = "gone"            // 410: change feed pruned past `since`
	CodeInternal      Code = "internal"        // 500
	CodeUnavailable   Code = "unavailable"     // 503: e.g. disk full; retry later
)

// Error is the body of every non-2xx response.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Current is the tree head at the time of a CodeConflict.
	Current *HeadInfo `json:"current,omitempty"`
	// RetryAfter is in seconds for CodeRateLimited.
	RetryAfter int `json:"retry_after,omitempty"`
}

// KDF mirrors format.KDFParams.
type KDF struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

// SignupRequest: POST /v1/signup
type SignupRequest struct {
	Username string           `json:"username"`
	Invite   string           `json:"invite,omitempty"`
	Account  coffer.AccountID `json:"account"`
	KDF      KDF              `json:"kdf"`
	// LoginKey is the Ed25519 public key derived from the password.
	LoginKey []byte `json:"login_key"`
	// MasterKey is the password-purpose master-key envelope.
	MasterKey []byte `json:"master_key"`
	// RecoveryLoginKey and RecoveryMasterKey are the recovery-key counterparts.
	RecoveryLoginKey  []byte `json:"recovery_login_key"`
	RecoveryMasterKey []byte `json:"recovery_master_key"`
	Bundle            []byte `json:"bundle"` // sealed key bundle, generation 1
	BundleGeneration  uint64 `json:"bundle_generation"`
	PublicKeys        []byte `json:"public_keys"`
	// Tree is the account tree; Commit its first commit (root and trash folders).
	Tree   coffer.TreeID `json:"tree"`
	Commit CommitRequest `json:"commit"`
	Device string        `json:"device,omitempty"`
}

// PreloginRequest: POST /v1/login/start
type PreloginRequest struct {
	Username string `json:"username"`
	Recovery bool   `json:"recovery,omitempty"`
}

// PreloginResponse answers every username (unknown ones get stable fake values, so the endpoint
// does not reveal which accounts exist).
type PreloginResponse struct {
	Account   coffer.AccountID `json:"account"`
	KDF       KDF              `json:"kdf"`
	Challenge []byte           `json:"challenge"` // 32 bytes, single use, short-lived
}

// LoginRequest: POST /v1/login/finish. Signature is over format.LoginMessage(..., ProofLogin or
// ProofRecover) made with the password's (or recovery key's) login key.
type LoginRequest struct {
	Username  string `json:"username"`
	Challenge []byte `json:"challenge"`
	Signature []byte `json:"signature"`
	Recovery  bool   `json:"recovery,omitempty"`
	Device    string `json:"device,omitempty"`
}

// LoginResponse carries the session token and everything needed to unlock the account.
type LoginResponse struct {
	Token   string      `json:"token"`
	Session string      `json:"session"`
	Account AccountInfo `json:"account"`
	// MasterKey is the envelope matching the login purpose (password or recovery).
	MasterKey []byte `json:"master_key"`
}

// AccountInfo: GET /v1/account
type AccountInfo struct {
	Account          coffer.AccountID `json:"account"`
	Username         string           `json:"username"`
	Bundle           []byte           `json:"bundle"`
	BundleGeneration uint64           `json:"bundle_generation"`
	PublicKeys       []byte           `json:"public_keys"`
	Tree             coffer.TreeID    `json:"tree"`
	Quota            int64            `json:"quota"` // bytes; 0 = unlimited
	Used             int64            `json:"used"`  // bytes of stored blobs
}

// PasswordRequest: PUT /v1/account/password. Proof answers a fresh challenge (from
// /v1/login/start) with the current password's login key (ProofPassword), or with the recovery
// login key (ProofRecover) when Recovery is set.
type PasswordRequest struct {
	Challenge    []byte `json:"challenge"`
	Signature    []byte `json:"signature"`
	Recovery     bool   `json:"recovery,omitempty"`
	KDF          KDF    `json:"kdf"`
	LoginKey     []byte `json:"login_key"`
	MasterKey    []byte `json:"master_key"`
	KeepSessions bool   `json:"keep_sessions,omitempty"`
}

// SessionInfo: GET /v1/sessions lists them; DELETE /v1/sessions/{id} revokes one.
type SessionInfo struct {
	ID       string `json:"id"`
	Device   string `json:"device"`
	Created  int64  `json:"created"`   // Unix seconds
	LastUsed int64  `json:"last_used"` // Unix seconds
	Current  bool   `json:"current"`
}

// HeadInfo is a tree head as served.
type HeadInfo struct {
	Tree    coffer.TreeID `json:"tree"`
	Version uint64        `json:"version"`
	Head    []byte        `json:"head"` // format.Head bytes; empty for a tree with no commit
}

// CommitRecord is one record of a commit plus the blobs it references (server-visible, for GC and
// quota; the authoritative chunk list is inside the encrypted body).
type CommitRecord struct {
	Record []byte          `json:"record"`
	Blobs  []coffer.BlobID `json:"blobs,omitempty"`
}

// CommitRequest: POST /v1/trees/{tree}/commit. Applied atomically iff the tree's head version is
// still BaseVersion; otherwise 409 with Error.Current.
type CommitRequest struct {
	BaseVersion uint64         `json:"base_version"`
	Head        []byte         `json:"head"`
	Records     []CommitRecord `json:"records"`
}

// CommitResponse answers a successful commit.
type CommitResponse struct {
	Seq     coffer.Seq `json:"seq"`
	Version uint64     `json:"version"`
}

// FolderIndexEntry is one folder of an index bucket.
type FolderIndexEntry struct {
	Folder coffer.NodeID `json:"folder"`
	Count  uint64        `json:"count"`
	Root   []byte        `json:"root"`
}

// Listing: GET /v1/trees/{tree}/folders/{folder} returns application/x-coffer-listing, a sequence
// of frames: 1 byte type, 4 bytes big-endian length, payload. Frame types below. The frames come
// in this order: FrameHead, FrameBuckets, FrameBucket, then zero or more FrameRecord (children of
// the folder, sorted by node ID), then FrameEnd.
const (
	FrameHead    byte = 1 // format.Head bytes (empty if the tree has no commit)
	FrameBuckets byte = 2 // 256*32 bytes: all bucket hashes
	FrameBucket  byte = 3 // the folder's bucket: repeated (folder[16] || count u64 || root[32])
	FrameRecord  byte = 4 // format.Record bytes
	FrameEnd     byte = 5 // empty
)

// ListingContentType is the media type of a folder listing.
const ListingContentType = "application/x-coffer-listing"

// VersionsResponse: GET /v1/trees/{tree}/nodes/{node}/versions — the kept older records of a
// node, newest first (the current record is first).
type VersionsResponse struct {
	Records [][]byte `json:"records"`
}

// BlobsRequest: POST /v1/blobs/check lists blobs; the response says which already exist for the
// caller (so resumed uploads skip them).
type BlobsRequest struct {
	Blobs []coffer.BlobID `json:"blobs"`
}

// BlobsResponse lists the subset of requested blobs that are stored.
type BlobsResponse struct {
	Present []coffer.BlobID `json:"present"`
}

// BlobPutResponse: PUT /v1/trees/{tree}/blobs/{id} (body: the blob bytes, at most MaxBlobSize;
// Content-Length and the HeaderCRC32C header required). The client names the blob: id is the
// SHA-256 of the body, which the server does not recompute; it checks the body's length and
// CRC-32C, and echoes the ID and size once the blob is durable. A blob counts against the quota
// of the tree's owner.
type BlobPutResponse struct {
	Blob coffer.BlobID `json:"blob"`
	Size int64         `json:"size"`
}

// HeaderCRC32C is the request header of a blob upload carrying the CRC-32C (Castagnoli) of the
// body as 8 lowercase hex digits (FormatCRC32C). The server refuses a body that does not match it.
const HeaderCRC32C = "Coffer-CRC32C"

// FormatCRC32C formats a CRC-32C for HeaderCRC32C.
func FormatCRC32C(crc uint32) string {
	const hex = "0123456789abcdef"
	var b [8]byte
	for i := range b {
		b[i] = hex[crc>>(28-4*i)&0xf]
	}
	return string(b[:])
}

// ParseCRC32C parses a HeaderCRC32C value: exactly 8 hex digits, lowercase.
func ParseCRC32C(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("CRC-32C %q: want 8 lowercase hex digits", s)
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint32(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		default:
			return 0, fmt.Errorf("CRC-32C %q: want 8 lowercase hex digits", s)
		}
	}
	return v, nil
}

// MaxBlobSize is the largest blob a server accepts.
const MaxBlobSize = 16 << 20

// Change is one commit in an account's feed.
type Change struct {
	Seq     coffer.Seq    `json:"seq"`
	Tree    coffer.TreeID `json:"tree"`
	Version uint64        `json:"version"`
	Head    []byte        `json:"head"`
	// Ops are the node IDs and record hashes of the commit (format.OpsHash input, in order).
	Ops []Op `json:"ops"`
}

// Op is one record of a commit.
type Op struct {
	Node      coffer.NodeID `json:"node"`
	Parent    coffer.NodeID `json:"parent"`
	Hash      []byte        `json:"hash"`
	Tombstone bool          `json:"tombstone,omitempty"`
}

// ChangesResponse: GET /v1/changes?since=N&limit=M returns commits with Seq > since, ascending.
// GET /v1/changes/stream?since=N is a text/event-stream: "event: change" with data {"seq":N,
// "tree":...} for every new commit, and a comment line every 15 s as keep-alive.
type ChangesResponse struct {
	Changes []Change   `json:"changes"`
	Latest  coffer.Seq `json:"latest"`
	More    bool       `json:"more"`
}

// ChangeEvent is the data of one "event: change" of GET /v1/changes/stream (the event's id is the
// Seq). Clients fetch the change itself with GET /v1/changes.
type ChangeEvent struct {
	Seq     coffer.Seq    `json:"seq"`
	Tree    coffer.TreeID `json:"tree"`
	Version uint64        `json:"version"`
}

// UserKeysResponse: GET /v1/users/{username}/keys returns an account's self-signed public key
// record (format.PublicKeys bytes; verify it, and compare its fingerprint out of band).
type UserKeysResponse struct {
	Account    coffer.AccountID `json:"account"`
	PublicKeys []byte           `json:"public_keys"`
}

// StatusOf returns the HTTP status the server uses for a code. One exception: a server whose
// storage is full answers CodeUnavailable with 507 instead of 503.
func StatusOf(c Code) int {
	switch c {
	case CodeBadRequest:
		return 400
	case CodeUnauthorized, CodeLoginFailed:
		return 401
	case CodeForbidden, CodeInviteNeeded:
		return 403
	case CodeNotFound:
		return 404
	case CodeExists, CodeConflict:
		return 409
	case CodeGone:
		return 410
	case CodeTooLarge:
		return 413
	case CodeInvalidCommit:
		return 422
	case CodeRateLimited:
		return 429
	case CodeUnavailable:
		return 503
	case CodeQuota:
		return 507
	}
	return 500
}

// UsageResponse: GET /v1/usage
type UsageResponse struct {
	Quota int64 `json:"quota"`
	Used  int64 `json:"used"`
	Blobs int64 `json:"blobs"`
}
