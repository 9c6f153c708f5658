package metastore

import (
	"context"
	"time"

	"coffer"
)

// HeadHistory is the optional store of a tree's past heads and of the heads its readers
// published (head gossip: fork and freeze detection, doc/DESIGN.md "Forks and freezes"). A Store
// that implements it (found by type assertion) lets the server serve GET /v1/trees/{tree}/heads
// and PUT /v1/trees/{tree}/seen; every implementation passes metastoretest's HeadHistory tests.
//
// The heads are opaque bytes here, as everywhere in the store; the server parses them.
type HeadHistory interface {
	// Heads returns the heads of tree's commits with from <= version <= to, by ascending
	// version, at most limit of them: the Head of every Commit (the first one included) is kept
	// for as long as the tree exists. ErrNotFound for an unknown tree; ErrInvalid for from == 0,
	// to < from or limit <= 0.
	Heads(ctx context.Context, tree coffer.TreeID, from, to uint64, limit int) ([][]byte, error)
	// PublishSeen stores p as the head p.Session last verified for p.Tree, replacing that
	// session's previous one. ErrNotFound for an unknown tree; ErrInvalid for an empty Session,
	// an empty Head, a zero Version or a zero Published.
	PublishSeen(ctx context.Context, p SeenHead) error
	// SeenHeads returns the heads published for tree, most recently published first (ties by
	// Session), at most limit (ErrInvalid for limit <= 0). Empty, no error, for a tree without
	// publications.
	SeenHeads(ctx context.Context, tree coffer.TreeID, limit int) ([]SeenHead, error)
}

// SeenHead is the latest head one session (device) published for one tree.
type SeenHead struct {
	Tree      coffer.TreeID
	Session   string // the publishing session's ID
	Device    string // its device label (informational)
	Version   uint64
	Head      []byte
	Published time.Time // server time of the publication (informational: the server is not trusted)
}
