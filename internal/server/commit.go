package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"sync"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
	"coffer/tree"
)

// maxTreeDepth bounds the ancestor walk of the cycle check.
const maxTreeDepth = 10000

// commitTarget is what a commit is validated against.
type commitTarget struct {
	tree   coffer.TreeID
	owner  coffer.AccountID
	writer ed25519.PublicKey // the only key allowed to sign heads and records (the owner's)
	base   *metastore.Head   // current head; nil for a new tree
}

// pending is one record of a commit under validation.
type pending struct {
	rec    *format.Record
	raw    []byte
	hash   [32]byte
	blobs  []coffer.BlobID
	stored *metastore.Node // the live record it replaces; nil for a new node
}

// validator holds per-commit lookups so each stored node and blob is read once.
type validator struct {
	ctx   context.Context
	meta  metastore.Store
	t     commitTarget
	nodes map[coffer.NodeID]*metastore.Node // nil value: not live
	ops   map[coffer.NodeID]*pending
	blobs map[coffer.BlobID]error
}

func (v *validator) stored(id coffer.NodeID) (*metastore.Node, error) {
	if n, ok := v.nodes[id]; ok {
		return n, nil
	}
	var np *metastore.Node
	if v.t.base != nil {
		n, err := v.meta.Node(v.ctx, v.t.tree, id)
		switch {
		case err == nil:
			np = &n
		case !errors.Is(err, coffer.ErrNotFound):
			return nil, internalError("commit: node", err)
		}
	}
	v.nodes[id] = np
	return np, nil
}

// validateCommit checks req against every rule of doc/FORMAT.md ("Commit validity") and returns
// the store commit with the derived folder summaries and bucket hashes. Rule violations are 422
// naming the rule and node; a stale base is 409 with the current head.
func (s *Server) validateCommit(ctx context.Context, t commitTarget, req *api.CommitRequest) (*metastore.Commit, error) {
	var (
		baseVersion uint64
		prev        *format.Head
	)
	if t.base != nil {
		baseVersion = t.base.Version
		if len(t.base.Head) > 0 {
			h, err := format.ParseHead(t.base.Head)
			if err != nil {
				return nil, internalError("commit: stored head", err)
			}
			prev = h
		}
	}
	if req.BaseVersion != baseVersion {
		if t.base == nil {
			return nil, errInvalidCommit("base_version: must be 0 for a new tree")
		}
		return nil, conflictError(t.base)
	}
	head, err := format.ParseHead(req.Head)
	if err != nil {
		return nil, errInvalidCommit("head: %v", err)
	}
	switch {
	case head.Tree != t.tree:
		return nil, errInvalidCommit("head: for tree %v, not %v", head.Tree, t.tree)
	case format.CheckSuccessor(prev, head) != nil:
		return nil, errInvalidCommit("head: version %d does not extend the current head (version %d)", head.Version, baseVersion)
	case head.VerifySignature() != nil:
		return nil, errInvalidCommit("head: bad signature")
	case !bytes.Equal(head.Writer[:], t.writer):
		return nil, errInvalidCommit("head: writer is not the tree owner's signing key")
	case len(req.Records) == 0:
		return nil, errInvalidCommit("records: a commit needs at least one record")
	}

	v := &validator{ctx: ctx, meta: s.meta, t: t, nodes: map[coffer.NodeID]*metastore.Node{},
		ops: make(map[coffer.NodeID]*pending, len(req.Records)), blobs: map[coffer.BlobID]error{}}
	order := make([]*pending, 0, len(req.Records))
	recs := make([]*format.Record, len(req.Records))
	for i, cr := range req.Records {
		if recs[i], err = format.ParseRecord(cr.Record); err != nil {
			return nil, errInvalidCommit("records[%d]: %v", i, err)
		}
	}
	if err := v.prefetch(recs); err != nil {
		return nil, err
	}
	for i, cr := range req.Records {
		p, err := v.checkRecord(cr, recs[i], head)
		if err != nil {
			return nil, err
		}
		v.ops[p.rec.Node] = p
		order = append(order, p)
	}
	// Records authored by the head's writer are attested by the head signature (the ops hash
	// commits to every record's bytes), so their own signatures are not re-verified here: a bad
	// one could only come from the key holder's client, and readers verify record signatures
	// where they use a record outside the head's commitment. Other authors (shared trees) are
	// verified; checkRecord currently refuses them.
	if bad := verifyRecords(foreignRecords(order, head.Writer)); bad != nil {
		return nil, errInvalidCommit("node %v: bad record signature", bad.rec.Node)
	}
	slices.SortFunc(order, func(a, b *pending) int { return bytes.Compare(a.rec.Node[:], b.rec.Node[:]) })
	if err := v.checkShape(order); err != nil {
		return nil, err
	}

	// Recompute the state and compare with what the writer signed.
	src := tree.Source(emptySource{})
	if t.base != nil {
		src = &storeSource{ctx: ctx, meta: s.meta, tree: t.tree, known: v.nodes}
	}
	tops := make([]tree.Op, len(order))
	for i, p := range order {
		tops[i] = tree.Op{Node: p.rec.Node, Parent: p.rec.Parent, Hash: p.hash, Tombstone: p.rec.Kind == format.KindTombstone}
		if p.stored != nil {
			tops[i].Existed, tops[i].OldParent = true, p.stored.Parent
		}
	}
	res, err := tree.Apply(src, tops)
	if err != nil {
		return nil, internalError("commit: state", err)
	}
	if res.OpsHash != head.OpsHash {
		return nil, errInvalidCommit("head: ops hash does not match the commit's records")
	}
	if res.StateRoot != head.StateRoot {
		return nil, errInvalidCommit("head: state root does not match the tree after the commit")
	}

	c := &metastore.Commit{
		Tree:         t.tree,
		Owner:        t.owner,
		BaseVersion:  baseVersion,
		Version:      head.Version,
		Head:         req.Head,
		Buckets:      res.Buckets,
		KeepVersions: s.cfg.KeepVersions,
	}
	feed := make([]api.Op, len(order))
	for i, p := range order {
		c.Records = append(c.Records, metastore.CommitRecord{
			Node: metastore.Node{Node: p.rec.Node, Parent: p.rec.Parent, Kind: uint8(p.rec.Kind),
				Version: p.rec.Version, Hash: p.hash, Record: p.raw},
			Tombstone: p.rec.Kind == format.KindTombstone,
			Blobs:     p.blobs,
		})
		feed[i] = api.Op{Node: p.rec.Node, Parent: p.rec.Parent, Hash: p.hash[:], Tombstone: p.rec.Kind == format.KindTombstone}
	}
	for _, f := range res.Folders {
		c.Folders = append(c.Folders, metastore.FolderSummary{Folder: f.Folder, Count: f.Count, Root: f.Root})
	}
	if c.Ops, err = json.Marshal(feed); err != nil {
		return nil, internalError("commit: ops", err)
	}
	return c, nil
}

// prefetchLevels bounds the ancestor levels prefetch reads ahead; deeper ancestors are read one
// by one when the cycle check reaches them.
const prefetchLevels = 32

// prefetch reads, in one store query per level, the stored records of the commit's nodes and of
// their ancestors, so validation does not ask the store once per record (a round trip each on
// PostgreSQL). Only reads are saved: the answers are the ones stored() would get.
func (v *validator) prefetch(recs []*format.Record) error {
	if v.t.base == nil {
		return nil // a new tree has no stored nodes
	}
	want := make([]coffer.NodeID, 0, 2*len(recs))
	asked := make(map[coffer.NodeID]bool, 2*len(recs))
	ask := func(id coffer.NodeID) {
		if !id.IsZero() && !asked[id] {
			if _, known := v.nodes[id]; !known {
				asked[id] = true
				want = append(want, id)
			}
		}
	}
	for _, r := range recs {
		ask(r.Node)
		ask(r.Parent)
	}
	for level := 0; len(want) > 0 && level < prefetchLevels; level++ {
		got, err := v.meta.Nodes(v.ctx, v.t.tree, want)
		if err != nil {
			return internalError("commit: nodes", err)
		}
		ids := want
		want = nil
		for _, id := range ids {
			n, ok := got[id]
			if !ok {
				v.nodes[id] = nil
				continue
			}
			v.nodes[id] = &n
			ask(n.Parent)
		}
	}
	return nil
}

// checkRecord checks the per-record rules of a record (rec, parsed from cr): author, signature,
// version chain against the stored record, kind, and blob ownership.
func (v *validator) checkRecord(cr api.CommitRecord, rec *format.Record, head *format.Head) (*pending, error) {
	n := rec.Node
	if _, dup := v.ops[n]; dup {
		return nil, errInvalidCommit("node %v: appears twice in the commit", n)
	}
	if rec.Author != head.Writer {
		return nil, errInvalidCommit("node %v: author is not the head's writer", n)
	}
	p := &pending{rec: rec, raw: cr.Record, hash: rec.Hash()}
	st, err := v.stored(n)
	if err != nil {
		return nil, err
	}
	p.stored = st
	if st == nil {
		if rec.Kind == format.KindTombstone {
			return nil, errInvalidCommit("node %v: tombstone of a node that is not live", n)
		}
		if rec.Version != 1 {
			return nil, errInvalidCommit("node %v: version chain: new node has version %d, want 1", n, rec.Version)
		}
	} else {
		if rec.Version != st.Version+1 {
			return nil, errInvalidCommit("node %v: version chain: version %d does not follow stored version %d", n, rec.Version, st.Version)
		}
		if rec.Prev != st.Hash {
			return nil, errInvalidCommit("node %v: version chain: prev does not match the stored record's hash", n)
		}
		if rec.Kind != format.KindTombstone && uint8(rec.Kind) != st.Kind {
			return nil, errInvalidCommit("node %v: kind changed from %d to %d", n, st.Kind, rec.Kind)
		}
	}
	if len(cr.Blobs) > 0 && rec.Kind != format.KindFile {
		return nil, errInvalidCommit("node %v: only file records reference blobs", n)
	}
	for _, b := range cr.Blobs {
		if slices.Contains(p.blobs, b) {
			continue
		}
		if err := v.checkBlob(b); err != nil {
			return nil, errInvalidCommit("node %v: blob %v: %v", n, b, err)
		}
		p.blobs = append(p.blobs, b)
	}
	return p, nil
}

// foreignRecords returns the records whose author is not writer.
func foreignRecords(ps []*pending, writer [32]byte) []*pending {
	var out []*pending
	for _, p := range ps {
		if p.rec.Author != writer {
			out = append(out, p)
		}
	}
	return out
}

// verifyRecords checks every record signature, on all cores (Ed25519 verification dominates the
// cost of a large commit). It returns the first bad record in commit order, or nil.
func verifyRecords(ps []*pending) *pending {
	workers := min(runtime.GOMAXPROCS(0), (len(ps)+63)/64)
	if workers <= 1 {
		for _, p := range ps {
			if p.rec.VerifySignature() != nil {
				return p
			}
		}
		return nil
	}
	bad := make([]bool, len(ps))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(ps); i += workers {
				bad[i] = ps[i].rec.VerifySignature() != nil
			}
		})
	}
	wg.Wait()
	if i := slices.Index(bad, true); i >= 0 {
		return ps[i]
	}
	return nil
}

var (
	errBlobMissing = errors.New("not found (upload it first)")
	errBlobForeign = errors.New("not owned by the tree's owner")
)

func (v *validator) checkBlob(id coffer.BlobID) error {
	if err, ok := v.blobs[id]; ok {
		return err
	}
	info, err := v.meta.Blob(v.ctx, id)
	switch {
	case errors.Is(err, coffer.ErrNotFound):
		err = errBlobMissing
	case err != nil:
		return internalError("commit: blob", err)
	case info.Owner != v.t.owner:
		err = errBlobForeign
	}
	v.blobs[id] = err
	return err
}

// liveFolderAfter reports whether id is the zero folder or a folder that is live after the commit.
func (v *validator) liveFolderAfter(id coffer.NodeID) (bool, error) {
	if id.IsZero() {
		return true, nil
	}
	if p, ok := v.ops[id]; ok {
		return p.rec.Kind == format.KindFolder, nil
	}
	st, err := v.stored(id)
	if err != nil {
		return false, err
	}
	return st != nil && st.Kind == uint8(format.KindFolder), nil
}

// checkShape checks the tree rules: parents are live folders, tombstoned folders keep no live
// children, and no node becomes its own ancestor.
func (v *validator) checkShape(order []*pending) error {
	for _, p := range order {
		n := p.rec.Node
		if p.rec.Kind == format.KindTombstone {
			if p.stored.Kind == uint8(format.KindFolder) {
				if err := v.checkEmptied(n); err != nil {
					return err
				}
			}
			continue
		}
		ok, err := v.liveFolderAfter(p.rec.Parent)
		if err != nil {
			return err
		}
		if !ok {
			return errInvalidCommit("node %v: parent %v is not a live folder after the commit", n, p.rec.Parent)
		}
	}
	// Cycles: walk every written node up to the zero folder. Nodes already shown to reach it are
	// remembered, so a commit costs about one lookup per distinct ancestor.
	rooted := map[coffer.NodeID]bool{}
	for _, p := range order {
		if p.rec.Kind == format.KindTombstone {
			continue
		}
		seen := map[coffer.NodeID]bool{}
		var path []coffer.NodeID
		for cur := p.rec.Node; !cur.IsZero() && !rooted[cur]; {
			if seen[cur] {
				return errInvalidCommit("node %v: move creates a cycle through %v", p.rec.Node, cur)
			}
			if len(path) >= maxTreeDepth {
				return errInvalidCommit("node %v: deeper than %d levels", p.rec.Node, maxTreeDepth)
			}
			seen[cur] = true
			path = append(path, cur)
			if op, ok := v.ops[cur]; ok {
				cur = op.rec.Parent
				continue
			}
			st, err := v.stored(cur)
			if err != nil {
				return err
			}
			if st == nil {
				return errInvalidCommit("node %v: ancestor %v is not live", p.rec.Node, cur)
			}
			cur = st.Parent
		}
		for _, id := range path {
			rooted[id] = true
		}
	}
	return nil
}

// checkEmptied checks that every stored child of the tombstoned folder is removed or moved away
// by the commit (new children are refused by the parent rule).
func (v *validator) checkEmptied(folder coffer.NodeID) error {
	for child, err := range v.meta.Children(v.ctx, v.t.tree, folder) {
		if err != nil {
			return internalError("commit: children", err)
		}
		op, ok := v.ops[child.Node]
		if !ok || (op.rec.Kind != format.KindTombstone && op.rec.Parent == folder) {
			return errInvalidCommit("node %v: tombstoned folder still has live child %v", folder, child.Node)
		}
	}
	return nil
}

// conflictError is the 409 answer carrying the current head.
func conflictError(h *metastore.Head) *apiError {
	return &apiError{status: http.StatusConflict, code: api.CodeConflict,
		msg:     "the tree's head moved: re-read and retry",
		current: &api.HeadInfo{Tree: h.Tree, Version: h.Version, Head: h.Head}}
}

// storeSource reads the pre-commit state from the metastore for tree.Apply.
type storeSource struct {
	ctx  context.Context
	meta metastore.Store
	tree coffer.TreeID
	// known are the validator's stored records (nil value: not live). A folder that is not live
	// has no stored children (a live node's parent is live), so a folder the commit creates costs
	// no query.
	known map[coffer.NodeID]*metastore.Node
}

func (s *storeSource) Children(folder coffer.NodeID) ([]format.Entry, error) {
	if n, ok := s.known[folder]; ok && n == nil && !folder.IsZero() {
		return nil, nil
	}
	var out []format.Entry
	for n, err := range s.meta.Children(s.ctx, s.tree, folder) {
		if err != nil {
			return nil, err
		}
		out = append(out, format.Entry{Node: n.Node, Hash: n.Hash})
	}
	return out, nil
}

func (s *storeSource) Bucket(b uint8) ([]format.FolderSummary, error) {
	fs, err := s.meta.Bucket(s.ctx, s.tree, b)
	if err != nil {
		return nil, err
	}
	out := make([]format.FolderSummary, len(fs))
	for i, f := range fs {
		out[i] = format.FolderSummary{Folder: f.Folder, Count: f.Count, Root: f.Root}
	}
	return out, nil
}

func (s *storeSource) Buckets() (*[256][32]byte, error) { return s.meta.Buckets(s.ctx, s.tree) }

// emptySource is the state of a tree before its first commit.
type emptySource struct{}

func (emptySource) Children(coffer.NodeID) ([]format.Entry, error) { return nil, nil }
func (emptySource) Bucket(uint8) ([]format.FolderSummary, error)   { return nil, nil }
func (emptySource) Buckets() (*[256][32]byte, error)               { return new([256][32]byte), nil }

// ---- access and the commit endpoint ----

// treeAccess is the ONE place that decides whether a session may use a tree: its owner may read
// and write it; others only a shared tree they are an accepted member of (shareAccess). It
// returns the tree's current head. Trees the caller may not read look absent.
func (s *Server) treeAccess(ctx context.Context, sess *metastore.Session, id coffer.TreeID, write bool) (*metastore.Head, error) {
	h, err := s.meta.Head(ctx, id)
	if errors.Is(err, coffer.ErrNotFound) {
		return nil, errNotFound("tree")
	}
	if err != nil {
		return nil, internalError("tree head", err)
	}
	if h.Owner != sess.Account {
		if err := s.shareAccess(ctx, sess, &h, write); err != nil {
			return nil, err
		}
	}
	return &h, nil
}

// signingKey returns the owner's identity key from the stored public key record.
func (s *Server) signingKey(ctx context.Context, owner coffer.AccountID) (ed25519.PublicKey, error) {
	a, err := s.meta.Account(ctx, owner)
	if err != nil {
		return nil, internalError("commit: owner", err)
	}
	pk, err := format.ParsePublicKeys(a.PublicKeys)
	if err != nil {
		return nil, internalError("commit: owner public keys", err)
	}
	return pk.Signing, nil
}

// commitPattern is the commit endpoint's route.
const commitPattern = "POST /v1/trees/{tree}/commit"

func (s *Server) handleCommit(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	clock := phaseClockFrom(ctx)
	clock.mark(phAuth)
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	var req api.CommitRequest
	if err := decodeJSON(w, r, maxCommitBody, &req); err != nil {
		return err
	}
	clock.mark(phDecode)
	h, err := s.treeAccess(ctx, sess, id, true)
	if err != nil {
		return err
	}
	if req.BaseVersion != h.Version {
		return conflictError(h)
	}
	writer, err := s.commitWriter(ctx, sess, h)
	if err != nil {
		return err
	}
	clock.mark(phAccess)
	c, err := s.validateCommit(ctx, commitTarget{tree: id, owner: h.Owner, writer: writer, base: h}, &req)
	if ae := (*apiError)(nil); errors.As(err, &ae) && ae.code == api.CodeInvalidCommit {
		// Validation reads the state in several queries; if another commit landed meanwhile the
		// mismatch is a conflict, not a broken commit.
		if cur, herr := s.meta.Head(ctx, id); herr == nil && cur.Version != h.Version {
			return conflictError(&cur)
		}
	}
	if err != nil {
		return err
	}
	clock.mark(phValidate)
	notices, err := s.storeCommit(ctx, c)
	clock.mark(phStore)
	switch {
	case errors.Is(err, coffer.ErrConflict):
		cur, herr := s.meta.Head(ctx, id)
		if herr != nil {
			return internalError("commit: head after conflict", herr)
		}
		return conflictError(&cur)
	case errors.Is(err, coffer.ErrNotFound):
		return errInvalidCommit("a referenced blob is no longer stored (collected?): upload it again")
	case err != nil:
		return internalError("commit", err)
	}
	s.metrics.commits.Add(1)
	seq := s.publishAll(ctx, notices, sess.Account)
	clock.mark(phPublish)
	writeJSON(w, http.StatusOK, api.CommitResponse{Seq: seq, Version: c.Version})
	if clock != nil {
		clock.records = len(c.Records)
		clock.mark(phRespond)
	}
	return nil
}
