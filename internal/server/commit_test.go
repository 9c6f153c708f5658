package server

import (
	"bufio"
	"bytes"
	"context"
	"iter"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

func TestCommitListingVersions(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeepVersions = 2 })
	u := e.signup("alice")

	docs := u.folder(u.root, "docs")
	f := u.file(docs.Node, "a.txt")
	g := u.file(docs.Node, "b.txt")
	resp := u.commit(docs, f, g)
	if resp.Version != 2 || resp.Seq != 2 {
		t.Fatalf("commit response %+v", resp)
	}

	var hi api.HeadInfo
	if st, _ := e.call("GET", treePath(u, "/head"), u.token, nil, &hi); st != 200 || hi.Version != 2 || !bytes.Equal(hi.Head, u.head.Marshal()) {
		t.Fatalf("head: %+v", hi)
	}

	// Listings verify against the head, for the zero folder, a folder, and an empty folder.
	for _, folder := range []coffer.NodeID{{}, u.root, docs.Node, u.trash, coffer.NewNodeID()} {
		l := u.list(folder)
		if err := l.verify(folder); err != nil {
			t.Fatalf("listing of %v does not verify: %v", folder, err)
		}
		if l.head.Version != 2 {
			t.Fatalf("listing head version %d", l.head.Version)
		}
	}
	if l := u.list(docs.Node); len(l.children) != 2 {
		t.Fatalf("docs has %d children", len(l.children))
	}

	// Three more versions of f: versions keeps the current one plus KeepVersions older ones.
	for range 3 {
		u.commit(u.next(f.Node, docs.Node))
	}
	var vr api.VersionsResponse
	if st, ae := e.call("GET", treePath(u, "/nodes/"+f.Node.String()+"/versions"), u.token, nil, &vr); st != 200 {
		t.Fatalf("versions: %d %+v", st, ae)
	}
	if len(vr.Records) != 3 {
		t.Fatalf("versions: %d records, want 3", len(vr.Records))
	}
	for i, raw := range vr.Records {
		r, err := format.ParseRecord(raw)
		if err != nil || r.Version != uint64(4-i) || r.VerifySignature() != nil {
			t.Fatalf("version %d: %+v %v", i, r, err)
		}
	}

	// Move g to the root, then delete docs with f in the same commit.
	u.commit(u.next(g.Node, u.root))
	u.commit(u.tomb(f.Node), u.tomb(docs.Node))
	l := u.list(u.root)
	if err := l.verify(u.root); err != nil {
		t.Fatal(err)
	}
	if len(l.children) != 1 || l.children[0].Node != g.Node {
		t.Fatalf("root children after delete: %d", len(l.children))
	}
	st, ae := e.call("GET", treePath(u, "/nodes/"+f.Node.String()+"/versions"), u.token, nil, nil)
	wantErr(t, st, ae, 404, api.CodeNotFound)

	// Another account sees none of it.
	b := e.signup("bob")
	st, ae = e.call("GET", treePath(u, "/head"), b.token, nil, nil)
	wantErr(t, st, ae, 404, api.CodeNotFound)
	st, ae = e.call("GET", treePath(u, "/folders/"+u.root.String()), b.token, nil, nil)
	wantErr(t, st, ae, 404, api.CodeNotFound)
	req, _ := b.build(b.folder(b.root, "x"))
	st, ae = e.call("POST", treePath(u, "/commit"), b.token, req, nil)
	wantErr(t, st, ae, 404, api.CodeNotFound)
}

func TestListingLargeFolder(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	big := u.folder(u.root, "big")
	recs := []*format.Record{big}
	for range 400 {
		recs = append(recs, u.file(big.Node, "f"))
	}
	u.commit(recs...)
	l := u.list(big.Node)
	if len(l.children) != 400 || !l.ended {
		t.Fatalf("%d children", len(l.children))
	}
	if err := l.verify(big.Node); err != nil {
		t.Fatal(err)
	}
	// A listing with a child dropped does not verify (the test's verifier is meaningful).
	l.children = l.children[1:]
	if err := l.verify(big.Node); err == nil {
		t.Fatal("tampered listing verified")
	}
}

// TestCommitRules sends one commit per rule violation; none may change the tree.
func TestCommitRules(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	a := u.folder(u.root, "a")
	b := u.folder(a.Node, "b")
	f := u.file(u.root, "f")
	u.commit(a, b, f)
	bob := e.signup("bob")
	bobBlob, st, _ := bob.upload([]byte("bob's bytes"))
	if st != 200 {
		t.Fatal("bob upload")
	}
	other := format.NewBundle(u.acct).SigningKey()

	resign := func(req *api.CommitRequest, mod func(h *format.Head)) {
		h, err := format.ParseHead(req.Head)
		if err != nil {
			t.Fatal(err)
		}
		mod(h)
		h.Sign(u.signer)
		req.Head = h.Marshal()
	}
	cases := []struct {
		name string
		req  func() api.CommitRequest
		want string // substring of the error message
	}{
		{"bad head signature", func() api.CommitRequest {
			req, _ := u.build(u.folder(u.root, "x"))
			req.Head[len(req.Head)-1] ^= 1
			return req
		}, "head: bad signature"},
		{"writer not owner", func() api.CommitRequest {
			saved := u.signer
			u.signer = other
			defer func() { u.signer = saved }()
			req, _ := u.build(u.folder(u.root, "x"))
			return req
		}, "writer"},
		{"author not writer", func() api.CommitRequest {
			saved := u.signer
			u.signer = other
			r := u.folder(u.root, "x")
			u.signer = saved
			req, _ := u.build(r)
			return req
		}, "author"},
		{"head of another tree", func() api.CommitRequest {
			req, _ := u.build(u.folder(u.root, "x"))
			resign(&req, func(h *format.Head) { h.Tree = bob.tree() })
			return req
		}, "head: for tree"},
		{"head does not extend", func() api.CommitRequest {
			req, _ := u.build(u.folder(u.root, "x"))
			resign(&req, func(h *format.Head) { h.Prev[0] ^= 1 })
			return req
		}, "does not extend"},
		{"state root mismatch", func() api.CommitRequest {
			req, _ := u.build(u.folder(u.root, "x"))
			resign(&req, func(h *format.Head) { h.StateRoot[0] ^= 1 })
			return req
		}, "state root"},
		{"ops hash mismatch", func() api.CommitRequest {
			req, _ := u.build(u.folder(u.root, "x"))
			resign(&req, func(h *format.Head) { h.OpsHash[0] ^= 1 })
			return req
		}, "ops hash"},
		{"version chain skips", func() api.CommitRequest {
			cur := u.live[f.Node]
			r := u.seal(format.KindFile, f.Node, u.root, cur.Version+2, cur.Hash(), &format.Body{Name: "f", Mode: 1, Content: emptyContent()})
			req, _ := u.build(r)
			return req
		}, "version chain"},
		{"version chain wrong prev", func() api.CommitRequest {
			cur := u.live[f.Node]
			r := u.seal(format.KindFile, f.Node, u.root, cur.Version+1, [32]byte{1}, &format.Body{Name: "f", Mode: 1, Content: emptyContent()})
			req, _ := u.build(r)
			return req
		}, "version chain"},
		{"new node not version 1", func() api.CommitRequest {
			r := u.seal(format.KindFolder, coffer.NewNodeID(), u.root, 2, [32]byte{1}, &format.Body{Name: "n", Mode: 1})
			req, _ := u.build(r)
			return req
		}, "version chain"},
		{"kind changed", func() api.CommitRequest {
			cur := u.live[f.Node]
			r := u.seal(format.KindFolder, f.Node, u.root, cur.Version+1, cur.Hash(), &format.Body{Name: "f", Mode: 1})
			req, _ := u.build(r)
			return req
		}, "kind changed"},
		{"tombstone of unknown node", func() api.CommitRequest {
			req, _ := u.build(format.SealTombstone(coffer.NewNodeID(), u.root, 2, [32]byte{1}, u.signer))
			return req
		}, "not live"},
		{"tombstone of folder with children", func() api.CommitRequest {
			req, _ := u.build(u.tomb(a.Node))
			return req
		}, "live child"},
		{"orphan parent", func() api.CommitRequest {
			req, _ := u.build(u.folder(coffer.NewNodeID(), "x"))
			return req
		}, "not a live folder"},
		{"file as parent", func() api.CommitRequest {
			req, _ := u.build(u.folder(f.Node, "x"))
			return req
		}, "not a live folder"},
		{"child of a folder tombstoned in the same commit", func() api.CommitRequest {
			req, _ := u.build(u.tomb(b.Node), u.folder(b.Node, "x"))
			return req
		}, "not a live folder"},
		{"cycle", func() api.CommitRequest {
			req, _ := u.build(u.next(a.Node, b.Node))
			return req
		}, "cycle"},
		{"self-cycle of two new folders", func() api.CommitRequest {
			x, y := coffer.NewNodeID(), coffer.NewNodeID()
			rx := u.seal(format.KindFolder, x, y, 1, [32]byte{}, &format.Body{Name: "x", Mode: 1})
			ry := u.seal(format.KindFolder, y, x, 1, [32]byte{}, &format.Body{Name: "y", Mode: 1})
			req, _ := u.build(rx, ry)
			return req
		}, "cycle"},
		{"missing blob", func() api.CommitRequest {
			req, _ := u.build(u.file(u.root, "g", coffer.BlobID{1, 2, 3}))
			return req
		}, "not found"},
		{"blob of another account", func() api.CommitRequest {
			req, _ := u.build(u.file(u.root, "g", bobBlob.Blob))
			return req
		}, "not owned"},
		{"blobs on a folder", func() api.CommitRequest {
			r := u.folder(u.root, "x")
			u.blobsOf[r] = []coffer.BlobID{bobBlob.Blob}
			req, _ := u.build(r)
			return req
		}, "only file records"},
		{"same node twice", func() api.CommitRequest {
			r := u.folder(u.root, "x")
			req, _ := u.build(r)
			req.Records = append(req.Records, req.Records[0])
			return req
		}, "twice"},
		{"garbage record", func() api.CommitRequest {
			req, _ := u.build(u.folder(u.root, "x"))
			req.Records[0].Record = req.Records[0].Record[:50]
			return req
		}, "records[0]"},
		{"no records", func() api.CommitRequest {
			req, _ := u.build(u.folder(u.root, "x"))
			req.Records = nil
			return req
		}, "at least one record"},
	}
	before := u.head.Marshal()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, ae, _ := u.post(c.req())
			wantErr(t, st, ae, 422, api.CodeInvalidCommit)
			mustContain(t, ae.Message, c.want)
		})
	}
	var hi api.HeadInfo
	e.call("GET", treePath(u, "/head"), u.token, nil, &hi)
	if !bytes.Equal(hi.Head, before) {
		t.Fatal("a refused commit changed the head")
	}

	// Valid: delete a folder together with its only child; then a stale base gets 409 + current.
	stale, _ := u.build(u.folder(u.root, "late"))
	u.commit(u.tomb(b.Node), u.tomb(a.Node))
	st, ae, _ := u.post(stale)
	wantErr(t, st, ae, 409, api.CodeConflict)
	if ae.Current == nil || ae.Current.Version != u.head.Version || !bytes.Equal(ae.Current.Head, u.head.Marshal()) {
		t.Fatalf("conflict without the current head: %+v", ae.Current)
	}
	// A commit claiming the right base but built on the old head is refused as not extending.
	stale.BaseVersion = u.head.Version
	st, ae, _ = u.post(stale)
	wantErr(t, st, ae, 422, api.CodeInvalidCommit)
}

func TestCommitWithBlobs(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	p, st, _ := u.upload([]byte("chunk data"))
	if st != 200 {
		t.Fatal("upload")
	}
	u.commit(u.file(u.root, "f", p.Blob, p.Blob))
	var ch api.ChangesResponse
	e.call("GET", "/v1/changes?since=1", u.token, nil, &ch)
	if len(ch.Changes) != 1 || len(ch.Changes[0].Ops) != 1 {
		t.Fatalf("changes: %+v", ch)
	}
}

// TestListingFrameOrder checks the raw frame sequence.
func TestListingFrameOrder(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	resp := e.request("GET", treePath(u, "/folders/"+coffer.NodeID{}.String()), u.token, nil)
	defer resp.Body.Close()
	l, err := parseListing(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.children) != 2 || l.children[0].Node == l.children[1].Node {
		t.Fatalf("zero folder: %d children", len(l.children))
	}
	if bytes.Compare(l.children[0].Node[:], l.children[1].Node[:]) >= 0 {
		t.Fatal("children not sorted")
	}
}

// TestConcurrentCommits races commits on one base: exactly one wins, the rest get 409.
func TestConcurrentCommits(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	const n = 8
	reqs := make([]api.CommitRequest, n)
	for i := range reqs {
		reqs[i], _ = u.build(u.folder(u.root, "x"), u.file(u.root, "y"))
	}
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range reqs {
		wg.Go(func() {
			st, ae, _ := u.post(reqs[i])
			if st != 200 && st != 409 {
				t.Errorf("commit %d: %d %+v", i, st, ae)
			}
			statuses[i] = st
		})
	}
	wg.Wait()
	wins := 0
	for _, st := range statuses {
		if st == 200 {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d commits won: %v", wins, statuses)
	}
	var ch api.ChangesResponse
	e.call("GET", "/v1/changes", u.token, nil, &ch)
	if ch.Latest != 2 || len(ch.Changes) != 2 {
		t.Fatalf("feed after the race: %+v", ch)
	}
}

// hookStore is the real store with a hook run once when a listing starts reading children.
type hookStore struct {
	metastore.Store
	once   sync.Once
	before func()
	armed  atomic.Bool
}

func (h *hookStore) Children(ctx context.Context, tree coffer.TreeID, folder coffer.NodeID) iter.Seq2[metastore.Node, error] {
	if h.armed.Load() {
		h.once.Do(h.before)
	}
	return h.Store.Children(ctx, tree, folder)
}

// TestListingCutOffWhenFolderChanges commits to a folder between the moment a listing read its
// bucket and the moment it streams the children: the listing must end without FrameEnd, never
// with a mixed state.
func TestListingCutOffWhenFolderChanges(t *testing.T) {
	hs := &hookStore{}
	e := newEnv(t, func(c *Config) { hs.Store = c.Meta; c.Meta = hs })
	u := e.signup("alice")
	u.commit(u.file(u.root, "a"))
	late, _ := u.build(u.file(u.root, "b"))
	hs.before = func() {
		hs.armed.Store(false)
		if st, ae, _ := u.post(late); st != 200 {
			t.Errorf("concurrent commit: %d %+v", st, ae)
		}
	}
	hs.armed.Store(true)
	// A fresh connection, so the transport does not silently retry the cut-off request.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", e.ts.URL+treePath(u, "/folders/"+u.root.String()), nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := client.Do(req)
	if err == nil {
		_, err = parseListing(bufio.NewReader(resp.Body))
		resp.Body.Close()
	}
	if err == nil {
		t.Fatalf("a listing mixing two states was delivered complete; logs:\n%s", e.logs.String())
	}
	u.accept(late)
	l := u.list(u.root)
	if err := l.verify(u.root); err != nil || len(l.children) != 2 {
		t.Fatalf("retry: %d children, %v", len(l.children), err)
	}
}
