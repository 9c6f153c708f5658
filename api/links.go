package api

import "coffer"

// Public links (doc/PROTOCOL.md, "Public links"). Link IDs in paths and bodies are the 16-byte
// format.LinkID in lowercase hex (32 digits). The link secret never appears in any request.

// LinkCreateRequest: POST /v1/links (session). Record is the signed format.Link record; its
// owner key must be the account's identity signing key and its node a live node of the
// account's tree of the same kind. Verifier is the LinkAuth public key (32 bytes) the server
// checks visitors' proofs against.
type LinkCreateRequest struct {
	Record   []byte `json:"record"`
	Verifier []byte `json:"verifier"`
	// Expires is a Unix time in seconds after which the link stops working; 0 = never.
	Expires int64 `json:"expires,omitempty"`
	// MaxDownloads is the number of successful opens allowed; 0 = unlimited. Read links only.
	MaxDownloads int64 `json:"max_downloads,omitempty"`
	// MaxUploads is the number of drops an upload-only link accepts; 0 = unlimited.
	MaxUploads int64 `json:"max_uploads,omitempty"`
}

// LinkInfo describes one of the caller's links: POST /v1/links answers one, GET /v1/links
// returns LinksResponse. DELETE /v1/links/{link} revokes one (204).
type LinkInfo struct {
	ID           string        `json:"id"` // hex link ID
	Tree         coffer.TreeID `json:"tree"`
	Node         coffer.NodeID `json:"node"`
	Record       []byte        `json:"record"`
	Password     bool          `json:"password"`
	Created      int64         `json:"created"`           // Unix seconds
	Expires      int64         `json:"expires,omitempty"` // Unix seconds; 0 = never
	MaxDownloads int64         `json:"max_downloads,omitempty"`
	Downloads    int64         `json:"downloads"`
	Revoked      bool          `json:"revoked,omitempty"`
	// UploadOnly marks a file-request link; MaxUploads and Uploads count its drops.
	UploadOnly bool  `json:"upload_only,omitempty"`
	MaxUploads int64 `json:"max_uploads,omitempty"`
	Uploads    int64 `json:"uploads,omitempty"`
}

// LinksResponse: GET /v1/links, newest first.
type LinksResponse struct {
	Links []LinkInfo `json:"links"`
}

// LinkChallengeResponse: POST /v1/links/{link}/challenge (no session; empty body). It answers
// before any proof with only what a visitor needs to derive the LinkAuth key: the link's flags
// (format.LinkFlagPassword...) and, for password links, the Argon2id parameters. 410 CodeGone for
// a revoked, expired or used-up link.
type LinkChallengeResponse struct {
	Flags     uint8  `json:"flags"`
	KDF       *KDF   `json:"kdf,omitempty"`
	Challenge []byte `json:"challenge"` // 32 bytes, single use, short-lived
}

// LinkOpenRequest: POST /v1/links/{link}/open (no session). Signature is
// Ed25519(LinkAuth, format.LinkAuthMessage(link, challenge)). A wrong proof is 401
// CodeLoginFailed and counts against the link and the client address like a failed login
// (429 CodeRateLimited after repeated failures).
type LinkOpenRequest struct {
	Challenge []byte `json:"challenge"`
	Signature []byte `json:"signature"`
}

// LinkOpenResponse answers a successful open, which counts as one download. Token is the link
// access token: "Authorization: Bearer <token>" on the link-gated reads
// GET /v1/links/{link}/trees/{tree}/folders/{folder} (a listing, as for accounts, of a folder
// inside the linked subtree) and GET /v1/links/{link}/blobs/{blob} (a blob referenced by a live
// file inside the linked subtree; Range supported).
//
// For an upload-only link the open does not count a download, Node is empty, and the token
// authorises only the uploads (POST /v1/links/{link}/blobs and POST /v1/links/{link}/drops).
type LinkOpenResponse struct {
	Token string `json:"token"`
	// Record is the signed link record; Node the linked node's current record (read links).
	Record []byte `json:"record"`
	Node   []byte `json:"node,omitempty"`
	// Owner and OwnerPublicKeys identify the link's owner (format.PublicKeys bytes); clients
	// check that its identity key is the link record's owner key.
	Owner           string `json:"owner"`
	OwnerPublicKeys []byte `json:"owner_public_keys"`
	Expires         int64  `json:"expires,omitempty"` // the link's expiry, Unix seconds; 0 = never
	TokenExpires    int64  `json:"token_expires"`     // Unix seconds
}
