package metastoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// snapshot is everything a failed commit must leave unchanged.
type snapshot struct {
	head    metastore.Head
	seq     coffer.Seq
	buckets [256][32]byte
	folders map[uint8][]metastore.FolderSummary
	refs    []coffer.BlobID
}

func snap(t *testing.T, s metastore.Store, u *user, buckets ...uint8) snapshot {
	t.Helper()
	h, err := s.Head(t.Context(), u.Tree)
	must(t, "Head", err)
	b, err := s.Buckets(t.Context(), u.Tree)
	must(t, "Buckets", err)
	sn := snapshot{head: h, seq: latestSeq(t, s, u.ID), buckets: *b, folders: map[uint8][]metastore.FolderSummary{}}
	for _, k := range buckets {
		f, err := s.Bucket(t.Context(), u.Tree, k)
		must(t, "Bucket", err)
		sn.folders[k] = f
	}
	sn.refs = referenced(t, s)
	return sn
}

func (a snapshot) check(t *testing.T, b snapshot) {
	t.Helper()
	switch {
	case a.head.Version != b.head.Version || !bytes.Equal(a.head.Head, b.head.Head):
		t.Fatalf("head changed from v%d to v%d", a.head.Version, b.head.Version)
	case a.seq != b.seq:
		t.Fatalf("latest seq changed from %d to %d", a.seq, b.seq)
	case a.buckets != b.buckets:
		t.Fatal("bucket hashes changed")
	case !sameIDs(a.refs, b.refs):
		t.Fatalf("referenced blobs changed from %d to %d", len(a.refs), len(b.refs))
	}
	for k, f := range a.folders {
		if !slices.Equal(f, b.folders[k]) {
			t.Fatalf("folder summaries of bucket %d changed", k)
		}
	}
}

func referenced(t *testing.T, s metastore.Store) []coffer.BlobID {
	t.Helper()
	var out []coffer.BlobID
	for id, err := range s.ReferencedBlobs(t.Context()) {
		must(t, "ReferencedBlobs", err)
		out = append(out, id)
	}
	return out
}

func testCommitBasic(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	blob := addBlob(t, s, u, 100, at(0))
	f := folder(newNode(), u.Root, 1)
	x := file(newNode(), f.Node.Node, 1, blob)
	c := u.commit(f, x)
	c.Folders = []metastore.FolderSummary{
		{Folder: u.Root, Count: 1, Root: sha256.Sum256([]byte("root"))},
		{Folder: f.Node.Node, Count: 1, Root: sha256.Sum256([]byte("f"))},
	}
	c.Buckets = map[uint8][32]byte{u.Root[0]: sha256.Sum256([]byte("b1")), f.Node.Node[0]: sha256.Sum256([]byte("b2"))}
	if seq := u.apply(t, s, c); seq != 2 {
		t.Fatalf("Commit seq = %d, want 2", seq)
	}
	checkNode(t, s, u.Tree, f.Node)
	checkNode(t, s, u.Tree, x.Node)
	checkChildren(t, s, u.Tree, u.Root, f.Node)
	checkChildren(t, s, u.Tree, f.Node.Node, x.Node)
	checkChildren(t, s, u.Tree, x.Node.Node)
	checkHead(t, s, u, 2, c.Head)
	if got := latestSeq(t, s, u.ID); got != 2 {
		t.Fatalf("LatestSeq = %d, want 2", got)
	}
	ch := changes(t, s, u.ID, 1, 10)
	if len(ch) != 1 || ch[0].Seq != 2 || ch[0].Version != 2 || ch[0].Tree != u.Tree ||
		!bytes.Equal(ch[0].Head, c.Head) || !bytes.Equal(ch[0].Ops, c.Ops) {
		t.Fatalf("Changes(since 1) = %+v", ch)
	}
	bk, err := s.Buckets(t.Context(), u.Tree)
	must(t, "Buckets", err)
	for k, h := range c.Buckets {
		if bk[k] != h {
			t.Fatalf("bucket %d not stored", k)
		}
	}
	for _, fs := range c.Folders {
		got, err := s.Bucket(t.Context(), u.Tree, fs.Folder[0])
		must(t, "Bucket", err)
		if !slices.Contains(got, fs) {
			t.Fatalf("Bucket(%d) = %+v lacks %+v", fs.Folder[0], got, fs)
		}
	}
	if refs := referenced(t, s); !sameIDs(refs, []coffer.BlobID{blob}) {
		t.Fatalf("ReferencedBlobs = %v, want [%s]", refs, blob)
	}
	checkVersions(t, s, u.Tree, x.Node.Node)
}

func testCommitConflict(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	x := file(newNode(), u.Root, 1)
	u.apply(t, s, u.commit(x))
	blob := addBlob(t, s, u, 10, at(0))
	before := snap(t, s, u, 0, u.Root[0])

	stale := *u
	stale.Version = 1 // behind: the tree is at 2
	n := file(newNode(), u.Root, 1, blob)
	x2 := file(x.Node.Node, u.Root, 2, blob)
	for _, base := range []uint64{0, 1, 3, 100} {
		stale.Version = base
		c := stale.commit(n, x2)
		c.Folders = []metastore.FolderSummary{{Folder: u.Root, Count: 2, Root: sha256.Sum256([]byte("x"))}}
		c.Buckets = map[uint8][32]byte{0: sha256.Sum256([]byte("x")), u.Root[0]: sha256.Sum256([]byte("y"))}
		_, err := s.Commit(t.Context(), c)
		wantErr(t, "Commit on a wrong base version", err, coffer.ErrConflict)
	}
	snap(t, s, u, 0, u.Root[0]).check(t, before)
	checkAbsent(t, s, u.Tree, n.Node.Node)
	checkNode(t, s, u.Tree, x.Node)
	checkVersions(t, s, u.Tree, x.Node.Node)
	checkChildren(t, s, u.Tree, u.Root, x.Node)

	// The right base then works.
	u.apply(t, s, u.commit(n, x2))
	checkNode(t, s, u.Tree, x2.Node)
}

// checkRefusedCommit checks that c fails with target and leaves u's tree as it was.
func checkRefusedCommit(t *testing.T, s metastore.Store, u *user, c metastore.Commit, target error) {
	t.Helper()
	before := snap(t, s, u, 0, u.Root[0])
	_, err := s.Commit(t.Context(), c)
	wantErr(t, "refused Commit", err, target)
	snap(t, s, u, 0, u.Root[0]).check(t, before)
	for _, r := range c.Records {
		if r.Tombstone {
			continue
		}
		if got, err := s.Node(t.Context(), u.Tree, r.Node.Node); err == nil && got.Version == r.Node.Version {
			t.Fatalf("refused commit applied node %s v%d", r.Node.Node, r.Node.Version)
		}
	}
}

func testCommitMissingBlob(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	good := addBlob(t, s, u, 10, at(0))
	f := folder(newNode(), u.Root, 1)
	ok := file(newNode(), u.Root, 1, good)
	bad := file(newNode(), f.Node.Node, 1, good, sha256.Sum256([]byte("missing")))
	c := u.commit(f, ok, bad)
	c.Folders = []metastore.FolderSummary{{Folder: u.Root, Count: 2, Root: sha256.Sum256([]byte("r"))}}
	c.Buckets = map[uint8][32]byte{u.Root[0]: sha256.Sum256([]byte("b"))}
	checkRefusedCommit(t, s, u, c, coffer.ErrNotFound)
	checkAbsent(t, s, u.Tree, f.Node.Node)
	checkAbsent(t, s, u.Tree, ok.Node.Node)

	// The version was not used up.
	u.apply(t, s, u.commit(f, ok))
	checkNode(t, s, u.Tree, ok.Node)
}

func testCommitForeignBlob(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	bobs := addBlob(t, s, bob, 10, at(0))
	x := file(newNode(), alice.Root, 1, bobs)
	checkRefusedCommit(t, s, alice, alice.commit(x), coffer.ErrNotFound)
	checkAbsent(t, s, alice.Tree, x.Node.Node)
}

func testCommitForeignOwner(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	// alice signs a commit onto bob's tree, claiming to own it.
	intruder := *bob
	intruder.ID = alice.ID
	x := file(newNode(), bob.Root, 1)
	before := snap(t, s, bob, 0)
	if _, err := s.Commit(t.Context(), intruder.commit(x)); err == nil {
		t.Fatal("Commit onto another account's tree with Owner set to the committer succeeded")
	}
	snap(t, s, bob, 0).check(t, before)
	checkAbsent(t, s, bob.Tree, x.Node.Node)
	if got := latestSeq(t, s, alice.ID); got != 1 {
		t.Fatalf("alice's seq moved to %d", got)
	}
}

func testCommitNewTree(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	shared := &user{Account: u.Account, Root: newNode()}
	shared.Tree = coffer.NewTreeID()
	c := shared.commit(folder(shared.Root, coffer.NodeID{}, 1))
	if seq := shared.apply(t, s, c); seq != 2 {
		t.Fatalf("first commit of a second tree: seq %d, want 2 (the owner's feed)", seq)
	}
	checkHead(t, s, shared, 1, c.Head)
	checkNode(t, s, shared.Tree, c.Records[0].Node)
	// Trees are separate: the first tree's top level does not list the second tree's root.
	if got := children(t, s, u.Tree, coffer.NodeID{}); len(got) != 1 || got[0].Node != u.Root {
		t.Fatalf("tree 1's top level = %d nodes, want only its root", len(got))
	}
	// A second "first commit" of the same tree conflicts.
	again := &user{Account: u.Account, Root: newNode()}
	again.Tree = shared.Tree
	_, err := s.Commit(t.Context(), again.commit(folder(again.Root, coffer.NodeID{}, 1)))
	wantErr(t, "second first commit of a tree", err, coffer.ErrConflict)
	// A commit on a base other than 0 for an unknown tree fails and creates nothing.
	ghost := &user{Account: u.Account, Root: newNode(), Version: 4}
	ghost.Tree = coffer.NewTreeID()
	if _, err := s.Commit(t.Context(), ghost.commit(folder(ghost.Root, coffer.NodeID{}, 1))); err == nil {
		t.Fatal("Commit on base 4 of an unknown tree succeeded")
	}
	_, err = s.Head(t.Context(), ghost.Tree)
	wantErr(t, "Head of the tree a refused commit named", err, coffer.ErrNotFound)
}

func testHistory(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	sub := folder(newNode(), u.Root, 1)
	u.apply(t, s, u.commit(sub))
	node := newNode()
	var recs [][]byte
	var blobs []coffer.BlobID
	for v := uint64(1); v <= 13; v++ {
		b := addBlob(t, s, u, 10, at(0))
		parent := u.Root
		if v == 7 {
			parent = sub.Node.Node // a move is a new version too
		}
		r := file(node, parent, v, b)
		u.apply(t, s, u.commit(r))
		recs, blobs = append(recs, r.Node.Record), append(blobs, b)
		if v == 2 {
			checkVersions(t, s, u.Tree, node, recs[0])
		}
	}
	checkNode(t, s, u.Tree, metastore.Node{Node: node, Parent: u.Root, Kind: kindFile, Version: 13,
		Hash: sha256.Sum256(recs[12]), Record: recs[12]})
	// KeepVersions 10: v12 down to v3.
	want := slices.Clone(recs[2:12])
	slices.Reverse(want)
	checkVersions(t, s, u.Tree, node, want...)
	// Blobs of v3…v13 are referenced (history and live); v1's and v2's are not.
	if refs := referenced(t, s); !sameIDs(refs, blobs[2:]) {
		t.Fatalf("ReferencedBlobs has %d blobs, want the 11 of v3…v13", len(refs))
	}
	if got := collect(t, s, at(time.Hour), 100); !sameIDs(got, blobs[:2]) {
		t.Fatalf("CollectableBlobs = %v, want the blobs of v1 and v2 only", got)
	}
}

func testHistoryKeepZero(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	node := newNode()
	var blobs []coffer.BlobID
	var recs [][]byte
	for v := uint64(1); v <= 4; v++ {
		b := addBlob(t, s, u, 10, at(0))
		r := file(node, u.Root, v, b)
		u.apply(t, s, u.commit(r))
		blobs, recs = append(blobs, b), append(recs, r.Node.Record)
	}
	checkVersions(t, s, u.Tree, node, recs[2], recs[1], recs[0])

	// KeepVersions drops to 1: the next replacement trims the node's history to one record.
	b5 := addBlob(t, s, u, 10, at(0))
	c := u.commit(file(node, u.Root, 5, b5))
	c.KeepVersions = 1
	u.apply(t, s, c)
	checkVersions(t, s, u.Tree, node, recs[3])

	// KeepVersions 0 keeps none.
	b6 := addBlob(t, s, u, 10, at(0))
	c = u.commit(file(node, u.Root, 6, b6))
	c.KeepVersions = 0
	u.apply(t, s, c)
	checkVersions(t, s, u.Tree, node)
	if refs := referenced(t, s); !sameIDs(refs, []coffer.BlobID{b6}) {
		t.Fatalf("ReferencedBlobs = %d blobs, want only the live version's", len(refs))
	}
	if got := collect(t, s, at(time.Hour), 100); !sameIDs(got, append(blobs, b5)) {
		t.Fatalf("CollectableBlobs returned %d blobs, want the 5 of replaced versions", len(got))
	}
}

func testFolderReplacementNotKept(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	f := folder(newNode(), u.Root, 1)
	u.apply(t, s, u.commit(f))
	f2 := folder(f.Node.Node, u.Root, 2) // a rename
	u.apply(t, s, u.commit(f2))
	checkNode(t, s, u.Tree, f2.Node)
	checkVersions(t, s, u.Tree, f.Node.Node)
}

func testTombstone(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	f := folder(newNode(), u.Root, 1)
	x := newNode()
	var blobs []coffer.BlobID
	for v := uint64(1); v <= 3; v++ {
		b := addBlob(t, s, u, 10, at(0))
		blobs = append(blobs, b)
		recs := []metastore.CommitRecord{file(x, f.Node.Node, v, b)}
		if v == 1 {
			recs = append(recs, f)
		}
		u.apply(t, s, u.commit(recs...))
	}
	keep := file(newNode(), u.Root, 1, addBlob(t, s, u, 10, at(0)))
	u.apply(t, s, u.commit(keep))
	if v, _ := s.Versions(t.Context(), u.Tree, x); len(v) != 2 {
		t.Fatalf("before the tombstone: %d kept versions, want 2", len(v))
	}

	u.apply(t, s, u.commit(tombstone(x, f.Node.Node, 4)))
	checkAbsent(t, s, u.Tree, x)
	checkVersions(t, s, u.Tree, x)
	checkChildren(t, s, u.Tree, f.Node.Node)
	if refs := referenced(t, s); !sameIDs(refs, keep.Blobs) {
		t.Fatalf("ReferencedBlobs after the tombstone: %d blobs, want only the other file's", len(refs))
	}
	if got := collect(t, s, at(time.Hour), 100); !sameIDs(got, blobs) {
		t.Fatalf("CollectableBlobs = %d blobs, want the tombstoned file's 3", len(got))
	}

	// Tombstoning the now empty folder.
	u.apply(t, s, u.commit(tombstone(f.Node.Node, u.Root, 2)))
	checkAbsent(t, s, u.Tree, f.Node.Node)
	checkChildren(t, s, u.Tree, u.Root, keep.Node)
}

// nodeInBucket returns a random node ID whose first byte is b.
func nodeInBucket(b byte) coffer.NodeID {
	n := newNode()
	n[0] = b
	return n
}

func testFoldersAndBuckets(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	f1, f2, f3 := nodeInBucket(7), nodeInBucket(7), nodeInBucket(200)
	sum := func(f coffer.NodeID, n uint64, tag string) metastore.FolderSummary {
		return metastore.FolderSummary{Folder: f, Count: n, Root: sha256.Sum256([]byte(tag))}
	}
	sorted := func(fs ...metastore.FolderSummary) []metastore.FolderSummary {
		slices.SortFunc(fs, func(a, b metastore.FolderSummary) int { return bytes.Compare(a.Folder[:], b.Folder[:]) })
		return fs
	}
	checkBucket := func(b uint8, want ...metastore.FolderSummary) {
		t.Helper()
		got, err := s.Bucket(t.Context(), u.Tree, b)
		must(t, "Bucket", err)
		if !slices.Equal(got, want) {
			t.Fatalf("Bucket(%d) = %+v, want %+v", b, got, want)
		}
	}
	before, err := s.Buckets(t.Context(), u.Tree)
	must(t, "Buckets", err)

	c := u.commit()
	c.Folders = []metastore.FolderSummary{sum(f1, 1, "a"), sum(f2, 2, "b"), sum(f3, 3, "c")}
	h7, h200 := sha256.Sum256([]byte("h7")), sha256.Sum256([]byte("h200"))
	c.Buckets = map[uint8][32]byte{7: h7, 200: h200}
	u.apply(t, s, c)
	checkBucket(7, sorted(sum(f1, 1, "a"), sum(f2, 2, "b"))...)
	checkBucket(200, sum(f3, 3, "c"))
	checkBucket(8)
	after, err := s.Buckets(t.Context(), u.Tree)
	must(t, "Buckets", err)
	for i := range after {
		want := before[i]
		switch i {
		case 7:
			want = h7
		case 200:
			want = h200
		}
		if after[i] != want {
			t.Fatalf("bucket %d: got %x, want %x", i, after[i][:4], want[:4])
		}
	}

	// Update one, remove one (Count 0), leave one.
	c = u.commit()
	c.Folders = []metastore.FolderSummary{sum(f1, 5, "a2"), {Folder: f2}}
	h7b := sha256.Sum256([]byte("h7b"))
	c.Buckets = map[uint8][32]byte{7: h7b}
	u.apply(t, s, c)
	checkBucket(7, sum(f1, 5, "a2"))
	checkBucket(200, sum(f3, 3, "c"))
	after, err = s.Buckets(t.Context(), u.Tree)
	must(t, "Buckets", err)
	if after[7] != h7b || after[200] != h200 {
		t.Fatal("Buckets after the second commit: bucket 7 not updated or bucket 200 changed")
	}
}

func testChildren(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	other := folder(newNode(), u.Root, 1)
	var want []metastore.Node
	for range 5 {
		var recs []metastore.CommitRecord
		for range 100 {
			r := file(newNode(), u.Root, 1)
			recs = append(recs, r, file(newNode(), other.Node.Node, 1))
			want = append(want, r.Node)
		}
		u.apply(t, s, u.commit(recs...))
	}
	u.apply(t, s, u.commit(other))
	want = append(want, other.Node)
	checkChildren(t, s, u.Tree, u.Root, want...)
	if n := len(children(t, s, u.Tree, other.Node.Node)); n != 500 {
		t.Fatalf("other folder has %d children, want 500", n)
	}
	// Stopping early releases the iteration (many times over: a leak would exhaust a pool).
	for range 100 {
		n := 0
		for _, err := range s.Children(t.Context(), u.Tree, u.Root) {
			must(t, "Children", err)
			if n++; n == 3 {
				break
			}
		}
	}
	// Reads and writes still work; a cancelled context is reported through the iterator.
	u.apply(t, s, u.commit(file(newNode(), u.Root, 1)))
	if n := len(children(t, s, u.Tree, u.Root)); n != 502 {
		t.Fatalf("root has %d children, want 502", n)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var gotErr error
	for _, err := range s.Children(ctx, u.Tree, u.Root) {
		if err != nil {
			gotErr = err
			break
		}
	}
	if gotErr == nil {
		t.Fatal("Children with a cancelled context yielded no error")
	}
	if got := children(t, s, u.Tree, newNode()); len(got) != 0 {
		t.Fatalf("Children of an unknown folder yielded %d nodes", len(got))
	}
}

func testChanges(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	commits := map[coffer.Seq]metastore.Commit{}
	for range 12 {
		c := u.commit(file(newNode(), u.Root, 1))
		commits[u.apply(t, s, c)] = c
	}
	all := changes(t, s, u.ID, 0, 100)
	if len(all) != 13 {
		t.Fatalf("Changes(0, 100) has %d entries, want 13", len(all))
	}
	for i, e := range all {
		if e.Seq != coffer.Seq(i+1) || e.Version != uint64(i+1) || e.Tree != u.Tree {
			t.Fatalf("entry %d: seq %d version %d tree %s", i, e.Seq, e.Version, e.Tree)
		}
		if c, ok := commits[e.Seq]; ok && (!bytes.Equal(e.Head, c.Head) || !bytes.Equal(e.Ops, c.Ops)) {
			t.Fatalf("entry seq %d: head or ops differ from the commit's", e.Seq)
		}
	}
	page := changes(t, s, u.ID, 5, 3)
	if len(page) != 3 || page[0].Seq != 6 || page[2].Seq != 8 {
		t.Fatalf("Changes(5, 3) = %d entries from %v", len(page), page)
	}
	if got := changes(t, s, u.ID, 13, 10); len(got) != 0 {
		t.Fatalf("Changes(13, 10) has %d entries, want 0", len(got))
	}
	if got := changes(t, s, u.ID, 1000, 10); len(got) != 0 {
		t.Fatalf("Changes(1000, 10) has %d entries, want 0", len(got))
	}
	if got := changes(t, s, u.ID, 10, 1); len(got) != 1 || got[0].Seq != 11 {
		t.Fatalf("Changes(10, 1) = %v", got)
	}
}

func testSeqPerAccount(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for i := range 4 {
		if seq := alice.apply(t, s, alice.commit(file(newNode(), alice.Root, 1))); seq != coffer.Seq(i+2) {
			t.Fatalf("alice commit %d: seq %d", i, seq)
		}
		if i%2 == 0 {
			bob.apply(t, s, bob.commit(file(newNode(), bob.Root, 1)))
		}
	}
	if a, b := latestSeq(t, s, alice.ID), latestSeq(t, s, bob.ID); a != 5 || b != 3 {
		t.Fatalf("LatestSeq: alice %d bob %d, want 5 and 3", a, b)
	}
	for _, e := range changes(t, s, alice.ID, 0, 100) {
		if e.Tree != alice.Tree {
			t.Fatal("alice's feed has an entry for another tree")
		}
	}
}

func testConcurrentCommits(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	const workers, each = 8, 6
	build := func(base uint64) (metastore.Commit, metastore.Node) {
		r := file(newNode(), u.Root, 1)
		w := *u
		w.Version = base
		return w.commit(r), r.Node
	}

	// Round 1: every worker commits on the same base; exactly one wins.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		wins    int
		nodes   []metastore.Node
		start   = make(chan struct{})
		heads   = map[uint64][]byte{}
		errList []error
	)
	for range workers {
		c, n := build(1)
		wg.Go(func() {
			<-start
			_, err := s.Commit(t.Context(), c)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				nodes = append(nodes, n)
				heads[c.Version] = c.Head
			case !errors.Is(err, coffer.ErrConflict):
				errList = append(errList, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errList) > 0 {
		t.Fatalf("concurrent commits on one base: unexpected error %v", errList[0])
	}
	if wins != 1 {
		t.Fatalf("%d of %d commits on the same base won, want exactly 1", wins, workers)
	}

	// Round 2: every worker makes `each` commits, re-reading the head on conflict.
	for range workers {
		wg.Go(func() {
			for done := 0; done < each; {
				h, err := s.Head(t.Context(), u.Tree)
				if err != nil {
					t.Errorf("Head: %v", err)
					return
				}
				c, n := build(h.Version)
				_, err = s.Commit(t.Context(), c)
				if errors.Is(err, coffer.ErrConflict) {
					continue
				}
				if err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
				done++
				mu.Lock()
				nodes = append(nodes, n)
				if _, dup := heads[c.Version]; dup {
					t.Errorf("version %d committed twice", c.Version)
				}
				heads[c.Version] = c.Head
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := uint64(2 + workers*each) // account creation, round 1, round 2
	h, err := s.Head(t.Context(), u.Tree)
	must(t, "Head", err)
	if h.Version != total || !bytes.Equal(h.Head, heads[total]) {
		t.Fatalf("Head after concurrent commits: v%d, want v%d with the winner's head", h.Version, total)
	}
	feed := changes(t, s, u.ID, 0, 1000)
	if len(feed) != int(total) {
		t.Fatalf("feed has %d entries, want %d", len(feed), total)
	}
	for i, e := range feed {
		if e.Seq != coffer.Seq(i+1) || e.Version != uint64(i+1) {
			t.Fatalf("feed entry %d: seq %d version %d; want gapless and ordered", i, e.Seq, e.Version)
		}
		if want, ok := heads[e.Version]; ok && !bytes.Equal(e.Head, want) {
			t.Fatalf("feed entry v%d carries another commit's head", e.Version)
		}
	}
	checkChildren(t, s, u.Tree, u.Root, nodes...)
}

// testNodes: Nodes returns exactly the live records among the IDs asked for, whatever their
// number (one, a few, and past every batch size of the stores), with duplicates and IDs that are
// unknown, tombstoned or live only in another tree.
func testNodes(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "nina")
	other := newUser(t, s, "otto")
	f := folder(newNode(), u.Root, 1)
	recs := []metastore.CommitRecord{f}
	for range 300 {
		recs = append(recs, file(newNode(), f.Node.Node, 1, addBlob(t, s, u, 10, at(0))))
	}
	u.apply(t, s, u.commit(recs...))
	gone := recs[1]
	u.apply(t, s, u.commit(tombstone(gone.Node.Node, f.Node.Node, 2)))
	foreign := folder(newNode(), other.Root, 1)
	other.apply(t, s, other.commit(foreign))

	live := map[coffer.NodeID]metastore.Node{u.Root: {}}
	for _, r := range recs[2:] {
		live[r.Node.Node] = r.Node
	}
	live[f.Node.Node] = f.Node
	for _, n := range []int{0, 1, 2, 16, 17, 128, 129, 300} {
		var ids []coffer.NodeID
		want := map[coffer.NodeID]bool{}
		for _, r := range recs[2:min(2+n, len(recs))] {
			ids = append(ids, r.Node.Node)
			want[r.Node.Node] = true
		}
		if n > 0 { // a duplicate, an unknown node, a tombstoned one, another tree's
			ids = append(ids, ids[0], newNode(), gone.Node.Node, foreign.Node.Node)
		}
		if n == 2 {
			ids = append(ids, f.Node.Node)
			want[f.Node.Node] = true
		}
		got, err := s.Nodes(t.Context(), u.Tree, ids)
		must(t, "Nodes", err)
		if len(got) != len(want) {
			t.Fatalf("Nodes(%d IDs) returned %d records, want %d", len(ids), len(got), len(want))
		}
		for id := range want {
			if n, ok := got[id]; !ok || !equalNode(n, live[id]) {
				t.Fatalf("Nodes(%d IDs): record of %s missing or different", len(ids), id)
			}
		}
	}
}
