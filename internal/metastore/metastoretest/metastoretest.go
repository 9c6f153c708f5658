// Package metastoretest is the conformance suite every metastore.Store implementation runs.
//
// Usage, in an implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		metastoretest.Run(t, func(t *testing.T) metastore.Store { return openStore(t) })
//	}
//
// newStore must return a fresh, empty store for every call and arrange its cleanup (Close) with
// t.Cleanup. The suite builds Commit values by hand: record, head and ops bytes are opaque to a
// store. Times are whole microseconds, so stores with microsecond clocks (PostgreSQL) pass.
package metastoretest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// Run runs the whole suite; each subtest gets its own store.
func Run(t *testing.T, newStore func(t *testing.T) metastore.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s metastore.Store)
	}{
		{"AccountCreateAndGet", testAccountCreateAndGet},
		{"AccountDuplicates", testAccountDuplicates},
		{"AccountNotFound", testAccountNotFound},
		{"Invites", testInvites},
		{"AccountFirstCommitAtomic", testAccountFirstCommitAtomic},
		{"Credentials", testCredentials},
		{"BundleCAS", testBundleCAS},
		{"LoginFailures", testLoginFailures},
		{"Sessions", testSessions},
		{"SessionDuplicates", testSessionDuplicates},
		{"CommitBasic", testCommitBasic},
		{"CommitConflictAppliesNothing", testCommitConflict},
		{"CommitMissingBlobAppliesNothing", testCommitMissingBlob},
		{"CommitForeignBlobAppliesNothing", testCommitForeignBlob},
		{"CommitForeignOwnerRefused", testCommitForeignOwner},
		{"CommitNewTree", testCommitNewTree},
		{"History", testHistory},
		{"HistoryKeepZero", testHistoryKeepZero},
		{"FolderReplacementNotKept", testFolderReplacementNotKept},
		{"Tombstone", testTombstone},
		{"FoldersAndBuckets", testFoldersAndBuckets},
		{"ChildrenSortedAndStreaming", testChildren},
		{"Nodes", testNodes},
		{"Changes", testChanges},
		{"SeqPerAccount", testSeqPerAccount},
		{"ConcurrentCommits", testConcurrentCommits},
		{"BlobBookkeeping", testBlobBookkeeping},
		{"BlobCRC", testBlobCRC},
		{"Quota", testQuota},
		{"CollectableBlobs", testCollectable},
		{"CollectableBlobsLimit", testCollectableLimit},
		{"CollectedBlobCannotBeCommitted", testCollectedBlobCannotBeCommitted},
		{"CollectRacesCommit", testCollectRacesCommit},
		{"ReRefreshKeepsBlobYoung", testReAddKeepsYoung},
		{"AllAndReferencedBlobs", testAllAndReferenced},
		{"Links", testLinks}, {"LinkBlobNodes", testLinkBlobNodes}, // links.go
		{"Drops", testDrops}, {"DropQuota", testDropQuota}, // drops.go
		{"Shares", testShares}, {"SharesConcurrent", testSharesConcurrent}, // shares.go
		{"HeadHistory", testHeadHistory}, // heads.go
	}
	tests = append(tests, moreTests...) // concurrency.go
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// Kinds as the record format numbers them (format.KindFolder, format.KindFile).
const (
	kindFolder = 1
	kindFile   = 2
)

// t0 is the suite's clock origin (whole microseconds).
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 891_011_000, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func rnd(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func newNode() coffer.NodeID { return coffer.NewNodeID() }

// user is an account created by the suite with its tree's current state.
type user struct {
	metastore.Account
	Root    coffer.NodeID // top-level root folder, created by the first commit
	Version uint64        // the tree's current version as far as the test knows
}

// newUser creates an account named name whose first commit creates a root folder.
func newUser(t *testing.T, s metastore.Store, name string) *user {
	t.Helper()
	u := &user{Account: account(name), Root: newNode()}
	first := u.commit(folder(u.Root, coffer.NodeID{}, 1))
	first.Folders = []metastore.FolderSummary{{Folder: coffer.NodeID{}, Count: 1, Root: sha256.Sum256(rnd(8))}}
	first.Buckets = map[uint8][32]byte{0: sha256.Sum256(rnd(8))}
	seq, err := s.CreateAccount(t.Context(), u.Account, "", first)
	if err != nil {
		t.Fatalf("CreateAccount(%q): %v", name, err)
	}
	if seq != 1 {
		t.Fatalf("CreateAccount returned seq %d, want 1", seq)
	}
	u.Version = 1
	return u
}

// account returns an account value (not stored) with every field set.
func account(name string) metastore.Account {
	return metastore.Account{
		ID:       coffer.NewAccountID(),
		Username: name,
		Created:  at(0),
		Credentials: metastore.Credentials{
			KDF: []byte("argon2id t=3 m=65536 p=1"), LoginKey: rnd(32), MasterKey: rnd(60),
			RecoveryLoginKey: rnd(32), RecoveryMasterKey: rnd(60),
		},
		Bundle:           rnd(200),
		BundleGeneration: 1,
		PublicKeys:       rnd(64),
		Tree:             coffer.NewTreeID(),
	}
}

// commit returns the next commit of u's tree (on u.Version) with records; KeepVersions 10.
func (u *user) commit(recs ...metastore.CommitRecord) metastore.Commit {
	v := u.Version + 1
	return metastore.Commit{
		Tree:         u.Tree,
		Owner:        u.ID,
		BaseVersion:  u.Version,
		Version:      v,
		Head:         fmt.Appendf(rnd(16), "head v%d", v),
		Records:      recs,
		Ops:          fmt.Appendf(rnd(8), "ops v%d", v),
		KeepVersions: 10,
	}
}

// apply commits c and advances u.Version.
func (u *user) apply(t *testing.T, s metastore.Store, c metastore.Commit) coffer.Seq {
	t.Helper()
	seq, err := s.Commit(t.Context(), c)
	if err != nil {
		t.Fatalf("Commit v%d: %v", c.Version, err)
	}
	u.Version = c.Version
	return seq
}

func record(kind uint8, node, parent coffer.NodeID, version uint64) metastore.Node {
	rec := fmt.Appendf(nil, "record kind=%d node=%s v%d ", kind, node, version)
	rec = append(rec, rnd(32)...)
	return metastore.Node{Node: node, Parent: parent, Kind: kind, Version: version, Hash: sha256.Sum256(rec), Record: rec}
}

func folder(node, parent coffer.NodeID, version uint64) metastore.CommitRecord {
	return metastore.CommitRecord{Node: record(kindFolder, node, parent, version)}
}

func file(node, parent coffer.NodeID, version uint64, blobs ...coffer.BlobID) metastore.CommitRecord {
	return metastore.CommitRecord{Node: record(kindFile, node, parent, version), Blobs: blobs}
}

func tombstone(node, parent coffer.NodeID, version uint64) metastore.CommitRecord {
	return metastore.CommitRecord{Node: record(3, node, parent, version), Tombstone: true}
}

// addBlob records a blob of size bytes owned by u, created at created.
func addBlob(t *testing.T, s metastore.Store, u *user, size int64, created time.Time) coffer.BlobID {
	t.Helper()
	id := coffer.BlobID(sha256.Sum256(rnd(32)))
	if err := s.AddBlob(t.Context(), metastore.BlobInfo{ID: id, Owner: u.ID, Size: size, Created: created}); err != nil {
		t.Fatalf("AddBlob(%d bytes): %v", size, err)
	}
	return id
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s = %v, want an error wrapping %v", what, err, target)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func equalNode(a, b metastore.Node) bool {
	return a.Node == b.Node && a.Parent == b.Parent && a.Kind == b.Kind && a.Version == b.Version &&
		a.Hash == b.Hash && bytes.Equal(a.Record, b.Record)
}

// checkNode checks that the live record of want.Node is want.
func checkNode(t *testing.T, s metastore.Store, tree coffer.TreeID, want metastore.Node) {
	t.Helper()
	got, err := s.Node(t.Context(), tree, want.Node)
	if err != nil {
		t.Fatalf("Node(%s): %v", want.Node, err)
	}
	if !equalNode(got, want) {
		t.Fatalf("Node(%s) = v%d kind %d parent %s, want v%d kind %d parent %s (or record bytes differ)",
			want.Node, got.Version, got.Kind, got.Parent, want.Version, want.Kind, want.Parent)
	}
}

func checkAbsent(t *testing.T, s metastore.Store, tree coffer.TreeID, node coffer.NodeID) {
	t.Helper()
	_, err := s.Node(t.Context(), tree, node)
	wantErr(t, fmt.Sprintf("Node(%s)", node), err, coffer.ErrNotFound)
}

// children collects Children, failing on an error.
func children(t *testing.T, s metastore.Store, tree coffer.TreeID, parent coffer.NodeID) []metastore.Node {
	t.Helper()
	var out []metastore.Node
	for n, err := range s.Children(t.Context(), tree, parent) {
		if err != nil {
			t.Fatalf("Children(%s): %v", parent, err)
		}
		out = append(out, n)
	}
	return out
}

// checkChildren checks that Children(parent) is exactly want, sorted by node ID.
func checkChildren(t *testing.T, s metastore.Store, tree coffer.TreeID, parent coffer.NodeID, want ...metastore.Node) {
	t.Helper()
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b metastore.Node) int { return bytes.Compare(a.Node[:], b.Node[:]) })
	got := children(t, s, tree, parent)
	if len(got) != len(want) {
		t.Fatalf("Children(%s) has %d nodes, want %d", parent, len(got), len(want))
	}
	for i := range got {
		if !equalNode(got[i], want[i]) {
			t.Fatalf("Children(%s)[%d] = %s v%d, want %s v%d", parent, i, got[i].Node, got[i].Version, want[i].Node, want[i].Version)
		}
	}
}

// checkHead checks the tree's head version and bytes.
func checkHead(t *testing.T, s metastore.Store, u *user, version uint64, head []byte) {
	t.Helper()
	h, err := s.Head(t.Context(), u.Tree)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if h.Tree != u.Tree || h.Owner != u.ID || h.Version != version || !bytes.Equal(h.Head, head) {
		t.Fatalf("Head = tree %s owner %s v%d %q, want tree %s owner %s v%d %q",
			h.Tree, h.Owner, h.Version, h.Head, u.Tree, u.ID, version, head)
	}
}

func checkVersions(t *testing.T, s metastore.Store, tree coffer.TreeID, node coffer.NodeID, want ...[]byte) {
	t.Helper()
	got, err := s.Versions(t.Context(), tree, node)
	if err != nil {
		t.Fatalf("Versions(%s): %v", node, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Versions(%s) has %d records, want %d", node, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("Versions(%s)[%d] = %q, want %q", node, i, got[i], want[i])
		}
	}
}

func latestSeq(t *testing.T, s metastore.Store, acct coffer.AccountID) coffer.Seq {
	t.Helper()
	seq, err := s.LatestSeq(t.Context(), acct)
	if err != nil {
		t.Fatalf("LatestSeq: %v", err)
	}
	return seq
}

func changes(t *testing.T, s metastore.Store, acct coffer.AccountID, since coffer.Seq, limit int) []metastore.ChangeEntry {
	t.Helper()
	out, err := s.Changes(t.Context(), acct, since, limit)
	if err != nil {
		t.Fatalf("Changes(since %d, limit %d): %v", since, limit, err)
	}
	return out
}

// collect runs CollectableBlobs and returns the IDs it removed.
func collect(t *testing.T, s metastore.Store, cutoff time.Time, limit int) []coffer.BlobID {
	t.Helper()
	bs, err := s.CollectableBlobs(t.Context(), cutoff, limit)
	if err != nil {
		t.Fatalf("CollectableBlobs: %v", err)
	}
	var out []coffer.BlobID
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func sortIDs(ids []coffer.BlobID) []coffer.BlobID {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b coffer.BlobID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

func sameIDs(a, b []coffer.BlobID) bool { return slices.Equal(sortIDs(a), sortIDs(b)) }
