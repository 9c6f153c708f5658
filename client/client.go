// Package client is the Coffer client library: every encryption, decryption and verification
// happens here. The server is treated as an adversary: everything received is verified before use.
//
// Verification model (doc/DESIGN.md): a folder listing carries the tree's signed head, the 256
// bucket hashes, the folder's bucket and its children; the client recomputes folder root, bucket
// hash and state root, checks the head's signature and writer and that the head does not roll back
// the last head this device verified (kept in Config.StateDir), and only then decrypts the
// children. Any failure is an error wrapping coffer.ErrAuth, coffer.ErrRollback or
// coffer.ErrCorrupt that names the remote path; a partial listing is never returned.
package client

import (
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"time"

	"coffer"
	"coffer/format"
)

// Config configures a client. Only Server is required for Signup/Login; StateDir for persistence.
type Config struct {
	// Server is the base URL, e.g. "http://127.0.0.1:8420".
	Server string
	// StateDir holds the session file, per-account verified state (last heads, bundle generation)
	// and transfer journals. Empty: nothing is persisted (library use, tests).
	StateDir string
	// HTTPClient defaults to a client with sane timeouts.
	HTTPClient *http.Client
	// MinKDF is the weakest KDF a server may offer; zero means format.MinKDF(). Tests lower it.
	MinKDF format.KDFParams
	// KDF is used for new passwords (sign-up, passwd); zero means format.DefaultKDF(). A zero salt
	// is replaced by a random one.
	KDF format.KDFParams
	// Parallel is the number of blob transfers in flight (default 4).
	Parallel int
	// Logger defaults to a discarding logger. Never receives keys, names or contents.
	Logger *slog.Logger
	// GossipEvery is how often the client exchanges heads with the account's other devices
	// (forks.go; also at its first listing). Zero means one minute; negative: only CheckHeads.
	GossipEvery time.Duration
	// AlertAfter is the number of consecutive verification failures of one kind after which the
	// client raises an alert (alert.go). Zero means 3.
	AlertAfter int
	// BigFolder is the number of children from which List turns a folder's listing into entries
	// as it streams in and keeps no decrypted nodes of it. Zero means 10,000; tests lower it.
	BigFolder int
}

const defaultParallel = 4

// withDefaults fills zero fields.
func (cfg Config) withDefaults() Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = defaultParallel
	}
	if cfg.MinKDF == (format.KDFParams{}) {
		cfg.MinKDF = format.MinKDF()
	}
	return cfg
}

// newKDF returns the parameters for a new password: cfg.KDF (with a fresh salt if its salt is
// zero) or format.DefaultKDF().
func (cfg Config) newKDF() format.KDFParams {
	if cfg.KDF.Time == 0 && cfg.KDF.MemoryKiB == 0 && cfg.KDF.Threads == 0 {
		return format.DefaultKDF()
	}
	k := cfg.KDF
	if k.Salt == ([16]byte{}) {
		k.Salt = format.DefaultKDF().Salt
	}
	return k
}

// Client is a logged-in session. It is safe for concurrent use by multiple goroutines, although
// concurrent writes to the same tree retry against each other (compare-and-swap on the head).
type Client struct {
	cfg  Config
	log  *slog.Logger
	http *transport

	username  string
	account   coffer.AccountID
	sessionID string
	mk        format.MasterKey
	bundle    *format.Bundle
	signer    ed25519.PrivateKey
	signPub   [32]byte
	pub       *format.PublicKeys
	tree      coffer.TreeID
	treeWrap  format.WrapKey
	state     *stateStore

	// *treeCache (mu, cache) is the last verified view of the tree this Client value works on.
	// A Client value works on one tree: the account tree, or (values made by inTree for paths
	// under a mount, trees.go) one shared folder; they share everything else.
	*treeCache
	// share is the shared folder this value works on (nil: the account tree, or a link visit).
	share *sharedTree
	// base is the remote path of this tree's root folder ("/" for the account tree, the mount's
	// path for a shared folder).
	base string
	// shares holds the account's shared trees (nil for link visits).
	shares *shareSet

	// Tunables (tests shrink them).
	batchFiles int // upload: files per commit batch
	// batchChunks: an upload commit batch commits once it holds this many chunk references
	// (about 45 bytes each in a record), so a batch of big files stays far from the 64 MiB
	// commit limit.
	batchChunks int
	batchEvery  time.Duration // upload: commit at least this often
}

// Identity describes the logged-in account.
type Identity struct {
	Username    string
	Account     coffer.AccountID
	Server      string
	Fingerprint string
}

// Whoami returns the account's identity; Fingerprint is the safety number of its public keys.
func (c *Client) Whoami() Identity {
	return Identity{Username: c.username, Account: c.account, Server: c.http.base, Fingerprint: c.pub.Fingerprint()}
}

// RecoveryKey returns the account's recovery key (derived from the master key; print it for the
// user to keep offline).
func (c *Client) RecoveryKey() format.RecoveryKey { return c.mk.RecoveryKey() }

// Entry is a verified, decrypted node.
type Entry struct {
	Path    string // absolute, "/"-separated ("/" for the root)
	Name    string
	ID      coffer.NodeID
	Parent  coffer.NodeID
	IsDir   bool
	Size    int64
	MTime   time.Time
	Mode    uint32
	Version uint64
	Hash    [32]byte // plaintext SHA-256 (files)
	// Trashed entries only: where the node came from ("" if that folder is gone).
	TrashOrigin string
	// Origin is set on an anonymous upload imported from an upload-only link: the link's ID
	// (base64url, as in LinkInfo.ID). Empty for everything else.
	Origin string
	// Shared is set on a shared folder's mount and on the root of a shared folder (a path
	// through the mount): the shared tree's ID.
	Shared coffer.TreeID
}

// Progress receives transfer progress. Implementations must be safe for concurrent use.
type Progress interface {
	// Start announces a file transfer of size bytes; the returned Tracker gets its progress.
	Start(name string, size int64) Tracker
}

// Warner is optionally implemented by a Progress to receive warnings (skipped symlinks and
// special files). The message may name local paths; it is meant for the user, not for logs.
type Warner interface {
	Warn(msg string)
}

// Tracker follows one file transfer.
type Tracker interface {
	Add(n int64)
	Done(err error)
}

// TransferOptions tune Upload and Download.
type TransferOptions struct {
	Progress Progress // nil: none
	// Overwrite replaces existing remote files (as a new version) / local files. Without it an
	// existing destination file is an error wrapping coffer.ErrExist.
	Overwrite bool
}

// TransferResult summarises a transfer.
type TransferResult struct {
	Files   int
	Folders int
	Bytes   int64
	Skipped int // unchanged files skipped on resume
	// Warnings lists skipped symlinks and special files (also sent to a Progress that is a Warner).
	Warnings []string
}

type nopTracker struct{}

func (nopTracker) Add(int64)  {}
func (nopTracker) Done(error) {}

func startTracker(p Progress, name string, size int64) Tracker {
	if p == nil {
		return nopTracker{}
	}
	if t := p.Start(name, size); t != nil {
		return t
	}
	return nopTracker{}
}
