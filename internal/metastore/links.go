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
	// MaxUploads bounds the drops an upload-only link accepts (0: unlimited); Uploads counts them.
	MaxUploads int64
	Uploads    int64
	Revoked    bool
}

// Usable reports whether l may be opened at now (not revoked, not expired, downloads and
// uploads left).
func (l Link) Usable(now time.Time) bool {
	return !l.Revoked && (l.Expires.IsZero() || now.Before(l.Expires)) &&
		(l.MaxDownloads == 0 || l.Downloads < l.MaxDownloads) &&
		(l.MaxUploads == 0 || l.Uploads < l.MaxUploads)
}

// Drops is the optional store of anonymous uploads through upload-only links (found by type
// assertion like Links; a store implementing Drops implements Links too). Every implementation
// passes metastoretest's Drops tests.
//
// A drop is opaque here (format.Drop bytes, encrypted to the owner) plus the blobs it references,
// which count against the owner's quota like any blob and are not collectable while the drop
// exists.
type Drops interface {
	// CreateDrop atomically counts one upload of link d.Link and stores d. The link must exist
	// and be d.Owner's (else ErrNotFound) and be usable at now (Link.Usable; else ErrForbidden,
	// nothing counted). Every blob in d.Blobs must exist and be owned by d.Owner (else
	// ErrNotFound). ErrQuota if the owner's blob bytes plus the bytes of its pending drops plus
	// len(d.Record) exceed a non-zero quota; ErrExist if the drop ID is taken; ErrInvalid for a
	// zero Created. On any error nothing is stored or counted. It returns the updated link.
	// Concurrent calls never count past MaxUploads. d.Seq is ignored (the store assigns it).
	CreateDrop(ctx context.Context, d Drop, now time.Time) (Link, error)
	// Drops returns up to limit of owner's pending drops with Seq > after, by ascending Seq
	// (ErrInvalid for limit <= 0).
	Drops(ctx context.Context, owner coffer.AccountID, after int64, limit int) ([]Drop, error)
	// DeleteDrop removes one of owner's drops (ErrNotFound if owner has no such drop). Its blobs
	// become collectable unless something else references them.
	DeleteDrop(ctx context.Context, owner coffer.AccountID, id [16]byte) error
	// DeleteDrops removes, in one transaction, those of ids that are owner's pending drops and
	// returns how many it removed (the others are ignored: another account's, or already gone).
	DeleteDrops(ctx context.Context, owner coffer.AccountID, ids [][16]byte) (int, error)
	// PendingDrops returns the number of owner's pending drops.
	PendingDrops(ctx context.Context, owner coffer.AccountID) (int64, error)
}

// Drop is one pending anonymous upload.
type Drop struct {
	ID      [16]byte
	Seq     int64 // store-assigned, increasing in creation order
	Link    [16]byte
	Owner   coffer.AccountID
	Record  []byte // format.Drop bytes
	Blobs   []coffer.BlobID
	Created time.Time
}
