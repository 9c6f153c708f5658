// Package client is the Coffer client library: every encryption, decryption and verification
// happens here. The server is treated as an adversary: everything received is verified before use.
//
// THIS FILE IS THE AGREED API SKELETON. The client engineer replaces the panicking bodies (splitting
// into files by concept) without changing these signatures; the CLI engineer codes against them.
package client

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"coffer"
	"coffer/api"
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
	// KDF is used for new passwords (sign-up, passwd); zero means format.DefaultKDF().
	KDF format.KDFParams
	// Parallel is the number of blob transfers in flight (default 4).
	Parallel int
	// Logger defaults to a discarding logger. Never receives keys, names or contents.
	Logger *slog.Logger
}

// Client is a logged-in session.
type Client struct{ _ [0]func() }

// Sentinel errors of this package (in addition to coffer's).
var (
	// ErrNotLoggedIn: Resume found no saved session.
	ErrNotLoggedIn = coffer.ErrNotFound // placeholder; the implementation defines its own sentinel
)

// SignupOptions are the inputs of Signup.
type SignupOptions struct {
	Username string
	Password []byte
	Invite   string
	Device   string
}

// Signup creates an account (keys, bundle, root and trash folders) and logs in.
func Signup(ctx context.Context, cfg Config, opts SignupOptions) (*Client, error) {
	panic("unimplemented")
}

// Login logs in with a password. A wrong password and an unknown user give the same error.
func Login(ctx context.Context, cfg Config, username string, password []byte, device string) (*Client, error) {
	panic("unimplemented")
}

// LoginRecovery logs in with the recovery key and sets newPassword.
func LoginRecovery(ctx context.Context, cfg Config, username string, rk format.RecoveryKey, newPassword []byte, device string) (*Client, error) {
	panic("unimplemented")
}

// Resume loads the session saved in cfg.StateDir (ErrNotLoggedIn if none).
func Resume(ctx context.Context, cfg Config) (*Client, error) { panic("unimplemented") }

// Save persists the session to StateDir (0600).
func (c *Client) Save() error { panic("unimplemented") }

// Logout revokes the session on the server and deletes the saved session (verified state is kept).
func (c *Client) Logout(ctx context.Context) error { panic("unimplemented") }

// Identity describes the logged-in account.
type Identity struct {
	Username    string
	Account     coffer.AccountID
	Server      string
	Fingerprint string
}

func (c *Client) Whoami() Identity { panic("unimplemented") }

// ChangePassword re-wraps the master key under newPassword (no file is re-encrypted).
func (c *Client) ChangePassword(ctx context.Context, oldPassword, newPassword []byte) error {
	panic("unimplemented")
}

// RecoveryKey returns the account's recovery key.
func (c *Client) RecoveryKey() format.RecoveryKey { panic("unimplemented") }

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
	// Trashed entries only: where the node came from.
	TrashOrigin string
}

// Stat returns the entry at an absolute remote path (coffer.ErrNotFound).
func (c *Client) Stat(ctx context.Context, path string) (*Entry, error) { panic("unimplemented") }

// List returns a folder's children sorted by name (a file path returns that file alone).
func (c *Client) List(ctx context.Context, path string) ([]*Entry, error) { panic("unimplemented") }

// Walk calls fn for path and, for folders, every descendant (depth-first, parents first, children
// sorted by name).
func (c *Client) Walk(ctx context.Context, path string, fn func(*Entry) error) error {
	panic("unimplemented")
}

// Mkdir creates a folder; with parents, missing ancestors too and an existing folder is not an error.
func (c *Client) Mkdir(ctx context.Context, path string, parents bool) (*Entry, error) {
	panic("unimplemented")
}

// Progress receives transfer progress. Implementations must be safe for concurrent use.
type Progress interface {
	// Start announces a file transfer of size bytes; the returned Tracker gets its progress.
	Start(name string, size int64) Tracker
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
}

// Upload copies local files and folders (recursively) to remote, with cp semantics: if remote is
// an existing folder, each source goes inside it; otherwise a single source is written as remote.
// Chunks are packed, uploaded in parallel and committed in batches; re-running after an
// interruption resumes without re-uploading finished blobs. Memory stays bounded.
func (c *Client) Upload(ctx context.Context, locals []string, remote string, opts TransferOptions) (TransferResult, error) {
	panic("unimplemented")
}

// Download copies remote files and folders to local with cp semantics. Every byte is verified
// before it is visible under its final name (temp file, verify, rename); decrypted names that
// could escape the target ("/", "..", NUL, Windows-reserved names) are refused.
func (c *Client) Download(ctx context.Context, remotes []string, local string, opts TransferOptions) (TransferResult, error) {
	panic("unimplemented")
}

// Cat writes a remote file's verified plaintext to w. If verification fails midway, an error is
// returned after at most the verified chunks were written.
func (c *Client) Cat(ctx context.Context, path string, w io.Writer) error { panic("unimplemented") }

// Move renames or moves a file or folder (cp/mv semantics: into dst if dst is a folder).
func (c *Client) Move(ctx context.Context, src, dst string) error { panic("unimplemented") }

// Remove moves a node to the trash.
func (c *Client) Remove(ctx context.Context, path string) error { panic("unimplemented") }

// Trash lists the trash.
func (c *Client) Trash(ctx context.Context) ([]*Entry, error) { panic("unimplemented") }

// RestoreTrash moves a trashed node (by name as shown in Trash, or node ID) back to where it was
// (or to dst if not empty).
func (c *Client) RestoreTrash(ctx context.Context, nameOrID, dst string) error {
	panic("unimplemented")
}

// EmptyTrash permanently deletes everything in the trash (signed tombstones).
func (c *Client) EmptyTrash(ctx context.Context) (int, error) { panic("unimplemented") }

// Version is one kept version of a file.
type Version struct {
	Version uint64
	Size    int64
	MTime   time.Time
	Hash    [32]byte
	Current bool
}

// Versions lists a file's versions, newest first (verified signatures and prev-hash chain).
func (c *Client) Versions(ctx context.Context, path string) ([]Version, error) {
	panic("unimplemented")
}

// RestoreVersion makes an older version current again (as a new version).
func (c *Client) RestoreVersion(ctx context.Context, path string, version uint64) error {
	panic("unimplemented")
}

// Usage returns quota and use.
func (c *Client) Usage(ctx context.Context) (api.UsageResponse, error) { panic("unimplemented") }

// Sessions lists the account's sessions.
func (c *Client) Sessions(ctx context.Context) ([]api.SessionInfo, error) { panic("unimplemented") }

// RevokeSession revokes one session.
func (c *Client) RevokeSession(ctx context.Context, id string) error { panic("unimplemented") }
