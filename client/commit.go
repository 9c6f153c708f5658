package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/tree"
)

// commitRetries bounds the rebuilds of one write after the head moved (409).
const commitRetries = 10

// staged is one record of a commit under construction.
type staged struct {
	rec   *format.Record
	blobs []coffer.BlobID
	op    tree.Op
	node  *node // the new live node; nil for a tombstone
}

// txn collects the records of one commit, built against one view.
type txn struct {
	c     *Client
	v     *view
	recs  []*staged
	fresh map[coffer.NodeID]bool // folders created by this commit
	nodes map[coffer.NodeID]bool // nodes already written by this commit
}

// put stages a folder or file record: a new node (prev == nil, version 1) or the next version
// of prev. parent is the new parent folder node (nil: top level).
func (t *txn) put(kind format.Kind, id coffer.NodeID, parent *node, prev *node, nk format.NodeKey,
	body *format.Body) (*node, error) {
	s, err := t.c.seal(kind, id, parent, prev, nk, body)
	if err != nil {
		return nil, err
	}
	return s.node, t.add(s)
}

// seal builds (without staging) the record put would stage; safe for concurrent use.
func (c *Client) seal(kind format.Kind, id coffer.NodeID, parent *node, prev *node, nk format.NodeKey,
	body *format.Body) (*staged, error) {
	var parentID coffer.NodeID
	wrap := c.topWrap()
	if parent != nil {
		parentID, wrap = parent.id(), parent.childWrap()
	}
	version, prevHash := uint64(1), [32]byte{}
	if prev != nil {
		version, prevHash = prev.rec.Version+1, prev.hash
	}
	rec, err := format.SealRecord(kind, id, parentID, version, prevHash, nk, wrap, body, c.signer)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	n := &node{rec: headerOf(rec), hash: rec.Hash(), key: nk, body: body}
	s := &staged{rec: rec, node: n, blobs: blobsOf(body.Content),
		op: tree.Op{Node: id, Parent: parentID, Hash: n.hash}}
	if prev != nil {
		s.op.Existed, s.op.OldParent = true, prev.rec.Parent
	}
	return s, nil
}

// add stages a sealed record.
func (t *txn) add(s *staged) error {
	id := s.op.Node
	if t.nodes[id] {
		return fmt.Errorf("client: node %v written twice in one commit: %w", id, coffer.ErrInvalid)
	}
	t.nodes[id] = true
	if s.node != nil && s.node.isDir() && !s.op.Existed {
		t.fresh[id] = true
	}
	t.recs = append(t.recs, s)
	return nil
}

// tombstone stages the permanent deletion of n.
func (t *txn) tombstone(n *node) error {
	rec := format.SealTombstone(n.id(), n.rec.Parent, n.rec.Version+1, n.hash, t.c.signer)
	return t.add(&staged{rec: rec, op: tree.Op{Node: n.id(), Parent: n.rec.Parent, Hash: rec.Hash(),
		Tombstone: true, Existed: true, OldParent: n.rec.Parent}})
}

// blobsOf lists the distinct blobs a content references, in first-use order.
func blobsOf(ct *format.Content) []coffer.BlobID {
	if ct == nil {
		return nil
	}
	var out []coffer.BlobID
	for i, ch := range ct.Chunks {
		if i > 0 && ct.Chunks[i-1].Blob == ch.Blob {
			continue
		}
		if !slices.Contains(out, ch.Blob) {
			out = append(out, ch.Blob)
		}
	}
	return out
}

// cachedView returns the last verified view without asking the server whether it is still
// current (nil if there is none).
func (c *Client) cachedView() *view {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cache
}

// withCachedView runs fn on the cached view (cached == true) and, if there is none or fn fails in
// any way on it, once more through withView on the server's current head. It saves the listing
// round trip of a write whose commit will check the base anyway (compare-and-swap on the head
// version): fn must treat what it reads on a cached view as possibly stale, and return an error
// (errStale will do) for any decision that the commit does not re-check.
func (c *Client) withCachedView(ctx context.Context, fn func(v *view, cached bool) error) error {
	if v := c.cachedView(); v != nil {
		err := fn(v, true)
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return c.withView(ctx, func(v *view) error { return fn(v, false) })
}

// update runs build and commits what it staged, rebuilding from a fresh view when the head moved
// (conflict). The first attempt builds on the cached view, if any, without a listing round trip:
// the commit's compare-and-swap on the base version refuses it if the tree moved since, and build
// then runs again on a fresh view (as it does after any failure on the cached one). build must be
// repeatable: it is called once per attempt.
func (c *Client) update(ctx context.Context, build func(t *txn) error) (err error) {
	defer func() { err = c.verdict(stageListing, err) }() // failure alerts (alert.go)
	cached := c.cachedView()
	for attempt := 0; attempt < commitRetries; attempt++ {
		v, fromCache := cached, cached != nil
		cached = nil
		if v == nil {
			var err error
			v, err = c.view(ctx)
			if errors.Is(err, errStale) {
				continue // a shared folder's key changed: read again
			}
			if err != nil {
				return err
			}
		}
		if err := c.checkWritable(); err != nil {
			return err
		}
		t := &txn{c: c, v: v, fresh: map[coffer.NodeID]bool{}, nodes: map[coffer.NodeID]bool{}}
		err := build(t)
		if errors.Is(err, errStale) || (err != nil && fromCache && ctx.Err() == nil) {
			continue
		}
		if err != nil {
			return err
		}
		if len(t.recs) == 0 {
			if fromCache {
				continue // "nothing to do" is not checked by a commit: decide it on the current head
			}
			return nil
		}
		err = c.commit(ctx, t)
		if errors.Is(err, errStale) && fromCache {
			continue // the cached view was behind: no contention, no back-off
		}
		if errors.Is(err, errStale) {
			c.log.Debug("client: head moved, rebuilding the commit", "attempt", attempt+1)
			// Jittered back-off so that concurrent writers do not keep colliding.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(10*time.Millisecond) << attempt))):
			}
			continue
		}
		return err
	}
	return fmt.Errorf("client: the tree keeps changing under this write, try again: %w", coffer.ErrConflict)
}

// commit computes the new state, signs the next head and posts the commit. A conflict returns
// errStale; success makes the resulting view current.
func (c *Client) commit(ctx context.Context, t *txn) error {
	if err := c.forkBlocks(c.tree); err != nil { // a detected fork blocks writes (forks.go)
		return err
	}
	v := t.v
	ops := make([]tree.Op, len(t.recs))
	for i, s := range t.recs {
		ops[i] = s.op
	}
	res, err := tree.Apply(&viewSource{ctx: ctx, c: c, v: v, fresh: t.fresh}, ops)
	if err != nil {
		if errors.Is(err, errStale) {
			return errStale
		}
		return fmt.Errorf("client: commit: %w", err)
	}
	h := &format.Head{Tree: c.tree, Version: v.head.Version + 1, Prev: v.headHash, StateRoot: res.StateRoot,
		OpsHash: res.OpsHash, Time: max(time.Now().UnixMilli(), v.head.Time)}
	h.Sign(c.signer)
	hraw := h.Marshal()
	req := api.CommitRequest{BaseVersion: v.head.Version, Head: hraw, Records: make([]api.CommitRecord, len(t.recs))}
	for i, s := range t.recs {
		req.Records[i] = api.CommitRecord{Record: s.rec.Marshal(), Blobs: s.blobs}
	}
	var resp api.CommitResponse
	err = c.http.json(ctx, "POST", "/v1/trees/"+c.tree.String()+"/commit", &req, &resp, true, false)
	if err != nil {
		var se *ServerError
		if !errors.As(err, &se) || se.Code != api.CodeConflict {
			return fmt.Errorf("client: commit: %w", err)
		}
		if se.Current == nil || !bytes.Equal(se.Current.Head, hraw) {
			return errStale
		}
		// A retried request whose first attempt was applied: the current head is ours.
	}
	if err := c.state.rememberHead(h); err != nil {
		return err
	}
	nv := v.successor(h, res, t.recs)
	c.mu.Lock()
	if nv == nil {
		c.cache = nil
	} else if c.cache == nil || c.cache.head.Version < h.Version {
		c.cache = nv
	}
	c.mu.Unlock()
	return nil
}

// successor derives the view after a commit of ours from v: changed folders are rebuilt from the
// staged nodes, unchanged ones are shared (folders are immutable). It returns nil if v cannot
// be carried over.
func (v *view) successor(h *format.Head, res *tree.Result, recs []*staged) *view {
	nv := newView(h, h.Hash(), res.All)
	remove := map[coffer.NodeID]map[coffer.NodeID]bool{}
	add := map[coffer.NodeID][]*node{}
	gone := map[coffer.NodeID]bool{}
	for _, s := range recs {
		op := s.op
		if op.Existed {
			if remove[op.OldParent] == nil {
				remove[op.OldParent] = map[coffer.NodeID]bool{}
			}
			remove[op.OldParent][op.Node] = true
		}
		if op.Tombstone {
			gone[op.Node] = true
		} else {
			add[op.Parent] = append(add[op.Parent], s.node)
		}
	}
	for _, s := range recs {
		if n := s.node; n != nil && n.isDir() && !s.op.Existed {
			nv.folders[s.op.Node] = newFolder(s.op.Node, n.childWrap(), sortedCopy(add[s.op.Node]), false)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	rebuild := func(f *folder) *folder {
		var kids []*node
		for _, n := range f.children {
			if !remove[f.id][n.id()] {
				kids = append(kids, n)
			}
		}
		kids = append(kids, add[f.id]...)
		sortNodes(kids)
		return newFolder(f.id, f.wrap, kids, f.trash)
	}
	for id, f := range v.folders {
		switch {
		case gone[id]:
		case remove[id] != nil || add[id] != nil:
			nv.folders[id] = rebuild(f)
		default:
			nv.folders[id] = f
		}
	}
	for id, ents := range v.entries {
		if remove[id] == nil && add[id] == nil && !gone[id] {
			nv.entries[id] = ents
		}
	}
	changed := map[uint8][]format.FolderSummary{}
	for _, s := range res.Folders {
		changed[format.BucketOf(s.Folder)] = append(changed[format.BucketOf(s.Folder)], s)
	}
	for b, sums := range v.bucketOf {
		ch, ok := changed[b]
		if !ok {
			nv.bucketOf[b] = sums
			continue
		}
		repl := map[coffer.NodeID]format.FolderSummary{}
		for _, s := range ch {
			repl[s.Folder] = s
		}
		var merged []format.FolderSummary
		for _, s := range sums {
			if _, ok := repl[s.Folder]; !ok {
				merged = append(merged, s)
			}
		}
		for _, s := range ch {
			if s.Count > 0 {
				merged = append(merged, s)
			}
		}
		slices.SortFunc(merged, func(a, b format.FolderSummary) int { return bytes.Compare(a.Folder[:], b.Folder[:]) })
		nv.bucketOf[b] = merged
	}
	nv.top = nv.folders[coffer.NodeID{}]
	nv.root, nv.trash = v.root, v.trash
	nv.authorOK = v.authorOK
	if nv.top == nil {
		return nil // cannot happen: every view lists the top level
	}
	return nv
}

func sortedCopy(ns []*node) []*node {
	out := slices.Clone(ns)
	sortNodes(out)
	return out
}
