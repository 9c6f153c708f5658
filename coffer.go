// Package coffer holds the identifiers and sentinel errors that every other Coffer package shares.
//
// It is deliberately tiny and pure (no I/O, no cgo) so that the format package, the stores, the
// server and the client (including its js/wasm build) can all import it.
package coffer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// Sentinel errors. Packages wrap them with %w; callers branch with errors.Is.
var (
	ErrNotFound  = errors.New("not found")
	ErrExist     = errors.New("already exists")
	ErrConflict  = errors.New("conflict")
	ErrCorrupt   = errors.New("corrupt data")
	ErrQuota     = errors.New("quota exceeded")
	ErrForbidden = errors.New("forbidden")
	ErrInvalid   = errors.New("invalid argument")
	// ErrUnavailable is a temporary server-side failure (disk full, store down): retry later.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrAuth is the one error for every failed decryption, signature or commitment check on data
	// received from the server. It never says which check failed (no oracle).
	ErrAuth = errors.New("authentication failed")
	// ErrRollback reports that the server served state older than state this client already saw.
	ErrRollback = errors.New("rollback detected")
)

func parse16(kind, s string) ([16]byte, error) {
	var out [16]byte
	if len(s) != 32 {
		return out, fmt.Errorf("coffer: %s id %q: want 32 hex digits: %w", kind, s, ErrInvalid)
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, fmt.Errorf("coffer: %s id %q: %w", kind, s, ErrInvalid)
	}
	return out, nil
}

func random16() [16]byte {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("coffer: crypto/rand failed: " + err.Error())
	}
	return b
}

// AccountID identifies an account. Chosen at random by the client at sign-up.
type AccountID [16]byte

// TreeID identifies a tree: a set of nodes with one hash-chained, signed head (an account's own
// drive now; each shared folder later).
type TreeID [16]byte

// NodeID identifies a file or folder within a tree. The zero NodeID is the virtual parent of a
// tree's top-level nodes.
type NodeID [16]byte

// BlobID is the SHA-256 of a blob's (ciphertext) bytes.
type BlobID [32]byte

// Seq is a position in an account's change feed. It increases by one per commit.
type Seq uint64

func NewAccountID() AccountID { return AccountID(random16()) }
func NewTreeID() TreeID       { return TreeID(random16()) }
func NewNodeID() NodeID       { return NodeID(random16()) }

func (id AccountID) String() string { return hex.EncodeToString(id[:]) }
func (id TreeID) String() string    { return hex.EncodeToString(id[:]) }
func (id NodeID) String() string    { return hex.EncodeToString(id[:]) }
func (id BlobID) String() string    { return hex.EncodeToString(id[:]) }

func (id NodeID) IsZero() bool { return id == NodeID{} }
func (id BlobID) IsZero() bool { return id == BlobID{} }

// ParseAccountID parses the 32-hex-digit form returned by String.
func ParseAccountID(s string) (AccountID, error) {
	b, err := parse16("account", s)
	return AccountID(b), err
}

// ParseTreeID parses the 32-hex-digit form returned by String.
func ParseTreeID(s string) (TreeID, error) { b, err := parse16("tree", s); return TreeID(b), err }

// ParseNodeID parses the 32-hex-digit form returned by String.
func ParseNodeID(s string) (NodeID, error) { b, err := parse16("node", s); return NodeID(b), err }

// ParseBlobID parses the 64-hex-digit form returned by String.
func ParseBlobID(s string) (BlobID, error) {
	var out BlobID
	if len(s) != 64 {
		return out, fmt.Errorf("coffer: blob id %q: want 64 hex digits: %w", s, ErrInvalid)
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, fmt.Errorf("coffer: blob id %q: %w", s, ErrInvalid)
	}
	return out, nil
}

// MarshalText and UnmarshalText make the IDs usable as JSON strings and map keys.
func (id AccountID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }
func (id TreeID) MarshalText() ([]byte, error)    { return []byte(id.String()), nil }
func (id NodeID) MarshalText() ([]byte, error)    { return []byte(id.String()), nil }
func (id BlobID) MarshalText() ([]byte, error)    { return []byte(id.String()), nil }

func (id *AccountID) UnmarshalText(b []byte) (err error) {
	*id, err = ParseAccountID(string(b))
	return
}
func (id *TreeID) UnmarshalText(b []byte) (err error) { *id, err = ParseTreeID(string(b)); return }
func (id *NodeID) UnmarshalText(b []byte) (err error) { *id, err = ParseNodeID(string(b)); return }
func (id *BlobID) UnmarshalText(b []byte) (err error) { *id, err = ParseBlobID(string(b)); return }
