// Package metastore defines the server's metadata store: accounts, sessions, invites, trees with
// their records and heads, the change feed, and blob bookkeeping. Implementations: sqlite (the
// embedded default) and, later, postgres. Every implementation passes metastoretest.Run.
//
// The store holds only what the server may see: opaque record bytes plus the cleartext header
// fields the server indexes (node, parent, kind, version, hash). It does not parse or verify the
// format; the server does that before calling Commit.
//
// All methods are safe for concurrent use. Errors wrap coffer.ErrNotFound, coffer.ErrExist,
// coffer.ErrConflict or coffer.ErrQuota where the contract says so.
package metastore

import (
	"context"
	"iter"
	"time"

	"coffer"
)

// Store is the whole metadata store.
type Store interface {
	Accounts
	Sessions
	Trees
	Blobs
	// Close releases resources. The store must not be used afterwards.
	Close() error
}

// Credentials are what the server checks at login and returns to unlock the account.
type Credentials struct {
	KDF               []byte // opaque to the store: the server's encoding of api.KDF
	LoginKey          []byte // Ed25519 public key
	MasterKey         []byte // password-purpose envelope
	RecoveryLoginKey  []byte
	RecoveryMasterKey []byte
}

// Account is one account row.
type Account struct {
	ID               coffer.AccountID
	Username         string
	Created          time.Time
	Credentials      Credentials
	Bundle           []byte
	BundleGeneration uint64
	PublicKeys       []byte
	Tree             coffer.TreeID
	Quota            int64 // bytes; 0 = unlimited
}

// Accounts stores accounts and invites.
type Accounts interface {
	// CreateAccount inserts the account and, atomically with it, its tree with the first commit
	// (which must be version 1), and consumes the invite if invite != "" (ErrNotFound if the invite
	// does not exist or was used). ErrExist if the username or ID is taken.
	CreateAccount(ctx context.Context, a Account, invite string, first Commit) (coffer.Seq, error)
	// Account returns the account by ID (ErrNotFound).
	Account(ctx context.Context, id coffer.AccountID) (Account, error)
	// AccountByName returns the account by username (ErrNotFound).
	AccountByName(ctx context.Context, username string) (Account, error)
	// SetCredentials replaces the credentials (password change or recovery).
	SetCredentials(ctx context.Context, id coffer.AccountID, c Credentials) error
	// SetBundle replaces the bundle and public keys iff the stored generation is oldGen
	// (ErrConflict otherwise; ErrNotFound for an unknown account); newGen must be greater than oldGen.
	SetBundle(ctx context.Context, id coffer.AccountID, oldGen, newGen uint64, bundle, publicKeys []byte) error
	// CreateInvite stores an unused invite code (ErrExist if present).
	CreateInvite(ctx context.Context, code string, created time.Time) error
	// LoginFailures returns the count of consecutive failures for key and the time of the last one.
	LoginFailures(ctx context.Context, key string) (n int, last time.Time, err error)
	// SetLoginFailures sets (n > 0) or clears (n == 0) the failure count for key.
	SetLoginFailures(ctx context.Context, key string, n int, last time.Time) error
}

// Session is one login session. The token itself is never stored, only its SHA-256.
type Session struct {
	ID        string
	Account   coffer.AccountID
	TokenHash [32]byte
	Device    string
	Created   time.Time
	LastUsed  time.Time
	Expires   time.Time
}

// Sessions stores login sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	// SessionByToken returns the session whose TokenHash matches (ErrNotFound).
	SessionByToken(ctx context.Context, tokenHash [32]byte) (Session, error)
	// TouchSession sets LastUsed and Expires.
	TouchSession(ctx context.Context, id string, lastUsed, expires time.Time) error
	// ListSessions returns the account's sessions, newest first.
	ListSessions(ctx context.Context, acct coffer.AccountID) ([]Session, error)
	// DeleteSession removes one session of acct (ErrNotFound if it is not acct's).
	DeleteSession(ctx context.Context, acct coffer.AccountID, id string) error
	// DeleteSessions removes all of acct's sessions except keep ("" keeps none).
	DeleteSessions(ctx context.Context, acct coffer.AccountID, keep string) error
}

// Node is a live record as indexed by the store.
type Node struct {
	Node    coffer.NodeID
	Parent  coffer.NodeID
	Kind    uint8
	Version uint64
	Hash    [32]byte
	Record  []byte
}

// CommitRecord is a record to write: a new or replacing live record, or (Tombstone) the removal
// of a node from the live set.
type CommitRecord struct {
	Node      Node
	Tombstone bool
	Blobs     []coffer.BlobID
}

// FolderSummary is a folder's entry in its index bucket; Count == 0 removes it.
type FolderSummary struct {
	Folder coffer.NodeID
	Count  uint64
	Root   [32]byte
}

// Commit is one validated commit, with the derived index data the server computed.
type Commit struct {
	Tree         coffer.TreeID
	Owner        coffer.AccountID
	BaseVersion  uint64 // 0 for the first commit
	Version      uint64 // BaseVersion + 1
	Head         []byte
	Records      []CommitRecord
	Folders      []FolderSummary    // every folder whose summary changed
	Buckets      map[uint8][32]byte // every bucket hash that changed
	Ops          []byte             // opaque encoding of the commit's ops for the change feed
	KeepVersions int                // replaced file records kept per node (older ones are dropped)
}

// Head is a tree's current head.
type Head struct {
	Tree    coffer.TreeID
	Owner   coffer.AccountID
	Version uint64
	Head    []byte
}

// ChangeEntry is one commit in an account's change feed.
type ChangeEntry struct {
	Seq     coffer.Seq
	Tree    coffer.TreeID
	Version uint64
	Head    []byte
	Ops     []byte
}

// Trees stores trees, their records and the change feed.
type Trees interface {
	// Commit applies c atomically iff the tree's current version is c.BaseVersion (else an error
	// wrapping ErrConflict and nothing is applied). Every blob in c.Records must exist and be owned
	// by c.Owner (else ErrNotFound, nothing applied). Replaced file records move to the version
	// history (trimmed to KeepVersions); tombstoned nodes lose their history. It appends one entry
	// to the owner's change feed and returns its Seq. Also: ErrForbidden if Owner does not own the
	// tree; ErrConflict for BaseVersion > 0 on an unknown tree or 0 on an existing one; ErrInvalid
	// if Version != BaseVersion+1 or a record does not raise its node's version; ErrNotFound if a
	// new tree's owner is not an account.
	Commit(ctx context.Context, c Commit) (coffer.Seq, error)
	// Head returns the tree's head (ErrNotFound for an unknown tree).
	Head(ctx context.Context, tree coffer.TreeID) (Head, error)
	// Node returns a live record (ErrNotFound).
	Node(ctx context.Context, tree coffer.TreeID, node coffer.NodeID) (Node, error)
	// Nodes returns the live records among ids, keyed by node ID (ids that are not live are
	// absent; duplicates are allowed). One round trip per few hundred IDs: commit validation
	// reads every record's stored version this way.
	Nodes(ctx context.Context, tree coffer.TreeID, ids []coffer.NodeID) (map[coffer.NodeID]Node, error)
	// Children yields the live records whose parent is folder, sorted by node ID.
	Children(ctx context.Context, tree coffer.TreeID, folder coffer.NodeID) iter.Seq2[Node, error]
	// Buckets returns all 256 bucket hashes (zero hashes for a tree whose buckets were never set).
	Buckets(ctx context.Context, tree coffer.TreeID) (*[256][32]byte, error)
	// Bucket returns the non-empty folders of one bucket, sorted by folder ID.
	Bucket(ctx context.Context, tree coffer.TreeID, bucket uint8) ([]FolderSummary, error)
	// Versions returns a node's kept older records, newest first (empty, no error, for an unknown
	// node).
	Versions(ctx context.Context, tree coffer.TreeID, node coffer.NodeID) ([][]byte, error)
	// Changes yields the account's feed entries with Seq > since, ascending, at most limit
	// (ErrInvalid for limit <= 0).
	Changes(ctx context.Context, acct coffer.AccountID, since coffer.Seq, limit int) ([]ChangeEntry, error)
	// LatestSeq returns the account's latest Seq (0 before any commit).
	LatestSeq(ctx context.Context, acct coffer.AccountID) (coffer.Seq, error)
	// AllTrees yields every tree ID (for fsck and migrations), in ID order.
	AllTrees(ctx context.Context) iter.Seq2[coffer.TreeID, error]
}

// KindFile is the record kind of files (it must equal format.KindFile; the store does not import
// format). Only replaced file records are kept as versions.
const KindFile uint8 = 2

// BlobInfo is the bookkeeping of one stored blob.
type BlobInfo struct {
	ID      coffer.BlobID
	Owner   coffer.AccountID
	Size    int64
	Created time.Time
	// CRC32C is the CRC-32C (Castagnoli) of the blob's bytes, which the server verified while
	// storing them; fsck checks the stored bytes against it. It is meaningful only if HasCRC:
	// blobs recorded before the server kept it have none (fsck checks those by their old
	// naming, SHA-256 of the bytes = ID).
	CRC32C uint32
	HasCRC bool
}

// Blobs keeps track of stored blobs for quota and garbage collection. The blob bytes live in a
// blobstore.Store; the server writes the bytes first and then calls AddBlob.
type Blobs interface {
	// AddBlob records a stored blob, with its CRC-32C if b.HasCRC (else none). If it exists with
	// the same owner it only refreshes Created (so an in-flight re-upload is not collected): the
	// size and the CRC-32C recorded first are kept, and a row recorded without a CRC-32C stays
	// without. ErrExist if another account owns it. ErrQuota
	// (nothing recorded) if it would take the owner over quota. ErrNotFound for an unknown owner;
	// ErrInvalid for a zero Created or a negative size.
	AddBlob(ctx context.Context, b BlobInfo) error
	// Blob returns one blob's bookkeeping (ErrNotFound). Blob, CollectableBlobs and AllBlobs return
	// the recorded CRC-32C (HasCRC false for a row recorded without one).
	Blob(ctx context.Context, id coffer.BlobID) (BlobInfo, error)
	// Usage returns the bytes and count of blobs owned by acct.
	Usage(ctx context.Context, acct coffer.AccountID) (bytes, count int64, err error)
	// CollectableBlobs returns up to limit blobs created before cutoff that no live or kept record
	// references, and removes their bookkeeping atomically, so a commit can no longer reference
	// them. The caller then deletes the bytes. Oldest first; a blob created exactly at cutoff is not
	// collected; ErrInvalid for limit <= 0 or a zero cutoff.
	CollectableBlobs(ctx context.Context, cutoff time.Time, limit int) ([]BlobInfo, error)
	// AllBlobs yields every blob's bookkeeping (for fsck), in ID order.
	AllBlobs(ctx context.Context) iter.Seq2[BlobInfo, error]
	// ReferencedBlobs yields every blob ID referenced by a live or kept record (for fsck), each once.
	ReferencedBlobs(ctx context.Context) iter.Seq2[coffer.BlobID, error]
}
