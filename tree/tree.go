// Package tree computes a tree's state commitment after a commit (doc/FORMAT.md, "State"): which
// folder summaries and bucket hashes change, the new state root and the ops hash.
//
// It is pure and shared by the server (which recomputes every commit before accepting it) and the
// client (which computes the root it signs). Both feed it data they have already verified or that
// they own; it does no I/O of its own beyond the Source callbacks.
package tree

import (
	"bytes"
	"fmt"
	"slices"

	"coffer"
	"coffer/format"
)

// Op is one record of a commit as the state computation sees it.
type Op struct {
	Node coffer.NodeID
	// Parent is the record's parent (for a tombstone: the parent it was removed from).
	Parent coffer.NodeID
	// Hash is the new record's hash (also for tombstones: it goes into the ops hash).
	Hash      [32]byte
	Tombstone bool
	// Existed reports whether the node was live before the commit; OldParent is then its parent.
	Existed   bool
	OldParent coffer.NodeID
}

// Source reads the state before the commit.
type Source interface {
	// Children returns the live children of folder, sorted by node, as (node, record hash).
	Children(folder coffer.NodeID) ([]format.Entry, error)
	// Bucket returns the non-empty folders of one bucket, sorted by folder.
	Bucket(b uint8) ([]format.FolderSummary, error)
	// Buckets returns all 256 bucket hashes.
	Buckets() (*[256][32]byte, error)
}

// Result is the state after the commit.
type Result struct {
	// Folders are the summaries of every folder whose children changed (Count 0: now empty).
	Folders []format.FolderSummary
	// Buckets are the changed bucket hashes.
	Buckets map[uint8][32]byte
	// All are all 256 bucket hashes after the commit.
	All       *[256][32]byte
	StateRoot [32]byte
	OpsHash   [32]byte
}

// Apply computes the state after ops. Ops must name distinct nodes.
func Apply(src Source, ops []Op) (*Result, error) {
	sorted := slices.Clone(ops)
	slices.SortFunc(sorted, func(a, b Op) int { return bytes.Compare(a.Node[:], b.Node[:]) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Node == sorted[i-1].Node {
			return nil, fmt.Errorf("tree: node %v appears twice in one commit: %w", sorted[i].Node, coffer.ErrInvalid)
		}
	}
	entries := make([]format.Entry, len(sorted))
	for i, op := range sorted {
		entries[i] = format.Entry{Node: op.Node, Hash: op.Hash}
	}
	res := &Result{OpsHash: format.OpsHash(entries), Buckets: map[uint8][32]byte{}}

	// Per affected folder: removals and upserts.
	type delta struct {
		remove map[coffer.NodeID]bool
		upsert map[coffer.NodeID][32]byte
	}
	deltas := map[coffer.NodeID]*delta{}
	get := func(f coffer.NodeID) *delta {
		d := deltas[f]
		if d == nil {
			d = &delta{remove: map[coffer.NodeID]bool{}, upsert: map[coffer.NodeID][32]byte{}}
			deltas[f] = d
		}
		return d
	}
	for _, op := range sorted {
		if op.Existed {
			get(op.OldParent).remove[op.Node] = true
		}
		if !op.Tombstone {
			get(op.Parent).upsert[op.Node] = op.Hash
		}
	}

	// New folder summaries.
	folderIDs := make([]coffer.NodeID, 0, len(deltas))
	for f := range deltas {
		folderIDs = append(folderIDs, f)
	}
	slices.SortFunc(folderIDs, func(a, b coffer.NodeID) int { return bytes.Compare(a[:], b[:]) })
	byBucket := map[uint8][]format.FolderSummary{}
	for _, f := range folderIDs {
		d := deltas[f]
		cur, err := src.Children(f)
		if err != nil {
			return nil, fmt.Errorf("tree: children of %v: %w", f, err)
		}
		next := make([]format.Entry, 0, len(cur)+len(d.upsert))
		for _, e := range cur {
			if d.remove[e.Node] {
				continue
			}
			if _, ok := d.upsert[e.Node]; ok {
				continue
			}
			next = append(next, e)
		}
		for n, h := range d.upsert {
			next = append(next, format.Entry{Node: n, Hash: h})
		}
		slices.SortFunc(next, func(a, b format.Entry) int { return bytes.Compare(a.Node[:], b.Node[:]) })
		s := format.FolderSummary{Folder: f, Count: uint64(len(next))}
		if len(next) > 0 {
			s.Root = format.FolderRoot(f, next)
		}
		res.Folders = append(res.Folders, s)
		b := format.BucketOf(f)
		byBucket[b] = append(byBucket[b], s)
	}

	all, err := src.Buckets()
	if err != nil {
		return nil, fmt.Errorf("tree: buckets: %w", err)
	}
	next := *all
	for b, changed := range byBucket {
		cur, err := src.Bucket(b)
		if err != nil {
			return nil, fmt.Errorf("tree: bucket %d: %w", b, err)
		}
		repl := map[coffer.NodeID]format.FolderSummary{}
		for _, s := range changed {
			repl[s.Folder] = s
		}
		merged := make([]format.FolderSummary, 0, len(cur)+len(changed))
		for _, s := range cur {
			if _, ok := repl[s.Folder]; ok {
				continue
			}
			merged = append(merged, s)
		}
		for _, s := range changed {
			if s.Count > 0 {
				merged = append(merged, s)
			}
		}
		slices.SortFunc(merged, func(a, b format.FolderSummary) int { return bytes.Compare(a.Folder[:], b.Folder[:]) })
		h := format.BucketHash(b, merged)
		next[b] = h
		res.Buckets[b] = h
	}
	res.All = &next
	res.StateRoot = format.StateRoot(&next)
	return res, nil
}

// VerifyListing checks a folder listing against a head's state root: children (sorted, unique)
// hash to the folder root found in bucket, bucket hashes to buckets[b], and buckets to stateRoot.
// A folder absent from its bucket must have no children. It returns an error wrapping
// coffer.ErrAuth on any mismatch.
func VerifyListing(stateRoot [32]byte, buckets *[256][32]byte, bucket []format.FolderSummary,
	folder coffer.NodeID, children []format.Entry) error {
	if format.StateRoot(buckets) != stateRoot {
		return fmt.Errorf("tree: folder %v: state root: %w", folder, coffer.ErrAuth)
	}
	b := format.BucketOf(folder)
	for i := range bucket {
		if format.BucketOf(bucket[i].Folder) != b || bucket[i].Count == 0 ||
			(i > 0 && bytes.Compare(bucket[i-1].Folder[:], bucket[i].Folder[:]) >= 0) {
			return fmt.Errorf("tree: folder %v: bucket entry: %w", folder, coffer.ErrAuth)
		}
	}
	if format.BucketHash(b, bucket) != buckets[b] {
		return fmt.Errorf("tree: folder %v: bucket hash: %w", folder, coffer.ErrAuth)
	}
	for i := 1; i < len(children); i++ {
		if bytes.Compare(children[i-1].Node[:], children[i].Node[:]) >= 0 {
			return fmt.Errorf("tree: folder %v: children not sorted: %w", folder, coffer.ErrAuth)
		}
	}
	idx := slices.IndexFunc(bucket, func(s format.FolderSummary) bool { return s.Folder == folder })
	if idx < 0 {
		if len(children) != 0 {
			return fmt.Errorf("tree: folder %v: unexpected children: %w", folder, coffer.ErrAuth)
		}
		return nil
	}
	s := bucket[idx]
	if s.Count != uint64(len(children)) || format.FolderRoot(folder, children) != s.Root {
		return fmt.Errorf("tree: folder %v: folder root: %w", folder, coffer.ErrAuth)
	}
	return nil
}
