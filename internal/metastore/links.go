package metastore

import (
	"context"
	"time"

	"coffer"
)

// Links is the optional store of public links. A Store that implements it (found by type
// assertion: `links, ok := store.(metastore.Links)`) lets the server serve links; every
// implementation passes metastoretest's Links tests (run by metastoretest.Run when the store
// implements the interface).
//
// The store keeps what the server may see: the signed link record (opaque here; the server
// parses its cleartext header), the owner, the linked tree and node, the visitors' proof
// verifier and the server-enforced policy (expiry, download limit, revocation).
type Links interface {
	// CreateLink stores a new link (ErrExist if the ID is taken; ErrNotFound if the owner is not
	// an account; ErrInvalid for a negative MaxDownloads or Downloads, or a zero Created).
	CreateLink(ctx context.Context, l Link) error
	// Link returns a link by ID, revoked or not (ErrNotFound).
	Link(ctx context.Context, id [16]byte) (Link, error)
	// ListLinks returns owner's links, newest first (revoked ones included).
	ListLinks(ctx context.Context, owner coffer.AccountID) ([]Link, error)
	// RevokeLink marks one of owner's links revoked (ErrNotFound if it is not owner's).
	// Revoking a revoked link succeeds.
	RevokeLink(ctx context.Context, owner coffer.AccountID, id [16]byte) error
	// UseLink atomically counts one download of a usable link and returns it as updated: a link
	// that is revoked, expired at now (Expires non-zero and not after now), or whose Downloads
	// reached a non-zero MaxDownloads is not counted and gives an error wrapping ErrForbidden;
	// an unknown link ErrNotFound. Concurrent calls never count past MaxDownloads.
	UseLink(ctx context.Context, id [16]byte, now time.Time) (Link, error)
	// LinkBlobNodes returns the live nodes of tree whose current record references blob
	// (empty, no error, if none), sorted by node ID.
	LinkBlobNodes(ctx context.Context, tree coffer.TreeID, blob coffer.BlobID) ([]coffer.NodeID, error)
}

// Link is one public link.
type Link struct {
	ID    [16]byte
	Owner coffer.AccountID
	Tree  coffer.TreeID
	Node  coffer.NodeID
	// Record is the signed link record (format.Link bytes).
	Record []byte
	// Verifier is the LinkAuth Ed25519 public key visitors prove knowledge of.
	Verifier     []byte
	Created      time.Time
	Expires      time.Time // zero: never
	MaxDownloads int64     // 0: unlimited
	Downloads    int64
	Revoked      bool
}

// Usable reports whether l may be opened at now (not revoked, not expired, downloads left).
func (l Link) Usable(now time.Time) bool {
	return !l.Revoked && (l.Expires.IsZero() || now.Before(l.Expires)) &&
		(l.MaxDownloads == 0 || l.Downloads < l.MaxDownloads)
}
