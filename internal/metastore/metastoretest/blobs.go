package metastoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

func checkUsage(t *testing.T, s metastore.Store, acct coffer.AccountID, bytes, count int64) {
	t.Helper()
	b, n, err := s.Usage(t.Context(), acct)
	must(t, "Usage", err)
	if b != bytes || n != count {
		t.Fatalf("Usage = %d bytes in %d blobs, want %d in %d", b, n, bytes, count)
	}
}

func checkBlob(t *testing.T, s metastore.Store, want metastore.BlobInfo) {
	t.Helper()
	got, err := s.Blob(t.Context(), want.ID)
	must(t, "Blob", err)
	if !sameBlob(got, want) {
		t.Fatalf("Blob(%s) = %+v, want %+v", want.ID, got, want)
	}
}

// sameBlob reports whether two blob records are equal (Created as an instant).
func sameBlob(a, b metastore.BlobInfo) bool {
	return a.ID == b.ID && a.Owner == b.Owner && a.Size == b.Size && a.Created.Equal(b.Created) &&
		a.CRC32C == b.CRC32C && a.HasCRC == b.HasCRC
}

// testBlobCRC: a blob's CRC-32C round-trips through AddBlob, Blob, AllBlobs and CollectableBlobs,
// zero and all-ones included, distinct from a row recorded without one; a re-add refreshes
// Created only, keeping the CRC-32C recorded first (or its absence).
func testBlobCRC(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	blob := func(name string, crc uint32, has bool) metastore.BlobInfo {
		return metastore.BlobInfo{ID: sha256.Sum256([]byte(name)), Owner: u.ID, Size: 10, Created: at(0), CRC32C: crc, HasCRC: has}
	}
	want := []metastore.BlobInfo{
		blob("crc", 0x1234abcd, true),
		blob("zero", 0, true),
		blob("ones", 0xffffffff, true),
		blob("high bit", 0x80000000, true),
		blob("none", 0, false),
	}
	for _, b := range want {
		must(t, "AddBlob", s.AddBlob(t.Context(), b))
		checkBlob(t, s, b)
	}
	wantErr(t, "AddBlob of a CRC-32C without HasCRC", s.AddBlob(t.Context(), blob("bad", 7, false)), coffer.ErrInvalid)
	_, err := s.Blob(t.Context(), blob("bad", 7, false).ID)
	wantErr(t, "Blob refused as invalid", err, coffer.ErrNotFound)

	// Re-adds: Created moves, the CRC-32C (or its absence) stays.
	for i, b := range want {
		again := b
		again.Created = at(time.Hour)
		again.CRC32C, again.HasCRC = 0x0badf00d, true
		must(t, "AddBlob again", s.AddBlob(t.Context(), again))
		want[i].Created = at(time.Hour)
		checkBlob(t, s, want[i])
	}
	again := want[0]
	again.CRC32C, again.HasCRC = 0, false
	must(t, "AddBlob again without a CRC", s.AddBlob(t.Context(), again))
	checkBlob(t, s, want[0])

	byID := map[coffer.BlobID]metastore.BlobInfo{}
	for _, b := range want {
		byID[b.ID] = b
	}
	n := 0
	for b, err := range s.AllBlobs(t.Context()) {
		must(t, "AllBlobs", err)
		if !sameBlob(b, byID[b.ID]) {
			t.Fatalf("AllBlobs yielded %+v, want %+v", b, byID[b.ID])
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("AllBlobs yielded %d blobs, want %d", n, len(want))
	}
	got, err := s.CollectableBlobs(t.Context(), at(2*time.Hour), 100)
	must(t, "CollectableBlobs", err)
	if len(got) != len(want) {
		t.Fatalf("CollectableBlobs returned %d blobs, want %d", len(got), len(want))
	}
	for _, b := range got {
		if !sameBlob(b, byID[b.ID]) {
			t.Fatalf("CollectableBlobs returned %+v, want %+v", b, byID[b.ID])
		}
	}
}

func testBlobBookkeeping(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	checkUsage(t, s, alice.ID, 0, 0)
	b := metastore.BlobInfo{ID: sha256.Sum256([]byte("one")), Owner: alice.ID, Size: 1000, Created: at(0)}
	must(t, "AddBlob", s.AddBlob(t.Context(), b))
	checkBlob(t, s, b)
	addBlob(t, s, alice, 500, at(0))
	checkUsage(t, s, alice.ID, 1500, 2)

	// Re-adding refreshes Created and does not count twice.
	b.Created = at(time.Hour)
	must(t, "AddBlob again", s.AddBlob(t.Context(), b))
	checkBlob(t, s, b)
	checkUsage(t, s, alice.ID, 1500, 2)

	// Another account cannot claim it.
	theft := b
	theft.Owner = bob.ID
	wantErr(t, "AddBlob of alice's blob as bob", s.AddBlob(t.Context(), theft), coffer.ErrExist)
	checkBlob(t, s, b)
	checkUsage(t, s, bob.ID, 0, 0)

	_, err := s.Blob(t.Context(), sha256.Sum256([]byte("unknown")))
	wantErr(t, "Blob(unknown)", err, coffer.ErrNotFound)
}

func testQuota(t *testing.T, s metastore.Store) {
	a := account("quota")
	a.Quota = 1000
	u := &user{Account: a, Root: newNode()}
	_, err := s.CreateAccount(t.Context(), a, "", u.commit(folder(u.Root, coffer.NodeID{}, 1)))
	must(t, "CreateAccount", err)
	u.Version = 1

	b1 := addBlob(t, s, u, 600, at(0))
	over := metastore.BlobInfo{ID: sha256.Sum256([]byte("over")), Owner: u.ID, Size: 401, Created: at(0)}
	wantErr(t, "AddBlob over quota", s.AddBlob(t.Context(), over), coffer.ErrQuota)
	_, err = s.Blob(t.Context(), over.ID)
	wantErr(t, "Blob refused for quota", err, coffer.ErrNotFound)
	checkUsage(t, s, u.ID, 600, 1)

	addBlob(t, s, u, 400, at(0)) // exactly at quota
	checkUsage(t, s, u.ID, 1000, 2)
	over.Size = 1
	wantErr(t, "AddBlob of 1 byte at quota", s.AddBlob(t.Context(), over), coffer.ErrQuota)
	// Re-adding a blob already counted is not new usage.
	must(t, "AddBlob again at quota", s.AddBlob(t.Context(), metastore.BlobInfo{ID: b1, Owner: u.ID, Size: 600, Created: at(time.Minute)}))

	// Collecting frees quota.
	if got := collect(t, s, at(time.Hour), 10); len(got) != 2 {
		t.Fatalf("collected %d blobs, want 2", len(got))
	}
	checkUsage(t, s, u.ID, 0, 0)
	must(t, "AddBlob after collection", s.AddBlob(t.Context(), over))

	// Quota 0 is unlimited.
	free := newUser(t, s, "unlimited")
	addBlob(t, s, free, 1<<40, at(0))
	checkUsage(t, s, free.ID, 1<<40, 1)
}

func testCollectable(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	cutoff := at(time.Hour)
	oldFree := addBlob(t, s, alice, 10, at(0))
	young := addBlob(t, s, alice, 20, at(2*time.Hour))
	oldLive := addBlob(t, s, alice, 30, at(0))
	oldHist := addBlob(t, s, alice, 40, at(0))
	oldGone := addBlob(t, s, alice, 50, at(0))
	newer := addBlob(t, s, alice, 60, at(0))
	bobOld := addBlob(t, s, bob, 70, at(0))
	edge := addBlob(t, s, bob, 80, cutoff) // created exactly at the cutoff: not before it

	x := newNode()
	alice.apply(t, s, alice.commit(file(x, alice.Root, 1, oldHist)))
	alice.apply(t, s, alice.commit(file(x, alice.Root, 2, oldLive, newer))) // oldHist kept in history
	gone := newNode()
	alice.apply(t, s, alice.commit(file(gone, alice.Root, 1, oldGone, newer)))
	alice.apply(t, s, alice.commit(tombstone(gone, alice.Root, 2)))

	got, err := s.CollectableBlobs(t.Context(), cutoff, 100)
	must(t, "CollectableBlobs", err)
	var ids []coffer.BlobID
	for _, b := range got {
		ids = append(ids, b.ID)
		if b.ID == oldFree && (b.Owner != alice.ID || b.Size != 10 || !b.Created.Equal(at(0))) {
			t.Fatalf("CollectableBlobs returned %+v for oldFree", b)
		}
	}
	if want := []coffer.BlobID{oldFree, oldGone, bobOld}; !sameIDs(ids, want) {
		t.Fatalf("CollectableBlobs = %v, want %v (never young, live-referenced or history-referenced blobs)", ids, want)
	}
	for _, id := range ids {
		_, err := s.Blob(t.Context(), id)
		wantErr(t, "Blob of a collected blob", err, coffer.ErrNotFound)
	}
	for _, id := range []coffer.BlobID{young, oldLive, oldHist, newer, edge} {
		if _, err := s.Blob(t.Context(), id); err != nil {
			t.Fatalf("Blob of a kept blob: %v", err)
		}
	}
	checkUsage(t, s, alice.ID, 20+30+40+60, 4)
	checkUsage(t, s, bob.ID, 80, 1)
	if again := collect(t, s, cutoff, 100); len(again) != 0 {
		t.Fatalf("second CollectableBlobs returned %d blobs", len(again))
	}
	// Later, the young blob ages out.
	if got := collect(t, s, at(3*time.Hour), 100); !sameIDs(got, []coffer.BlobID{young, edge}) {
		t.Fatalf("CollectableBlobs with a later cutoff = %v, want the young and the edge blob", got)
	}
}

func testCollectableLimit(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	all := map[coffer.BlobID]bool{}
	for range 5 {
		all[addBlob(t, s, u, 1, at(0))] = true
	}
	seen := map[coffer.BlobID]bool{}
	for _, want := range []int{2, 2, 1, 0} {
		got := collect(t, s, at(time.Hour), 2)
		if len(got) != want {
			t.Fatalf("CollectableBlobs(limit 2) returned %d, want %d", len(got), want)
		}
		for _, id := range got {
			if !all[id] || seen[id] {
				t.Fatalf("CollectableBlobs returned %s twice or unknown", id)
			}
			seen[id] = true
		}
	}
}

func testCollectedBlobCannotBeCommitted(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	b := addBlob(t, s, u, 10, at(0))
	if got := collect(t, s, at(time.Hour), 10); !sameIDs(got, []coffer.BlobID{b}) {
		t.Fatalf("CollectableBlobs = %v", got)
	}
	x := file(newNode(), u.Root, 1, b)
	checkRefusedCommit(t, s, u, u.commit(x), coffer.ErrNotFound)
}

func testReAddKeepsYoung(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	b := addBlob(t, s, u, 10, at(0))
	// An in-flight re-upload refreshes the blob just before GC looks.
	must(t, "AddBlob again", s.AddBlob(t.Context(), metastore.BlobInfo{ID: b, Owner: u.ID, Size: 10, Created: at(2 * time.Hour)}))
	if got := collect(t, s, at(time.Hour), 10); len(got) != 0 {
		t.Fatalf("CollectableBlobs collected a refreshed blob: %v", got)
	}
}

func testAllAndReferenced(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	want := map[coffer.BlobID]metastore.BlobInfo{}
	for i, u := range []*user{alice, bob, alice, bob, alice} {
		id := addBlob(t, s, u, int64(100+i), at(time.Duration(i)*time.Minute))
		want[id] = metastore.BlobInfo{ID: id, Owner: u.ID, Size: int64(100 + i), Created: at(time.Duration(i) * time.Minute)}
	}
	var prev []byte
	n := 0
	for b, err := range s.AllBlobs(t.Context()) {
		must(t, "AllBlobs", err)
		if prev != nil && bytes.Compare(prev, b.ID[:]) >= 0 {
			t.Fatal("AllBlobs is not in ascending ID order")
		}
		prev = bytes.Clone(b.ID[:])
		w, ok := want[b.ID]
		if !ok || b.Owner != w.Owner || b.Size != w.Size || !b.Created.Equal(w.Created) {
			t.Fatalf("AllBlobs yielded %+v, want %+v", b, w)
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("AllBlobs yielded %d blobs, want %d", n, len(want))
	}

	if refs := referenced(t, s); len(refs) != 0 {
		t.Fatalf("ReferencedBlobs before any reference: %d", len(refs))
	}
	var aliceBlobs []coffer.BlobID
	for id, b := range want {
		if b.Owner == alice.ID {
			aliceBlobs = append(aliceBlobs, id)
		}
	}
	x, y := newNode(), newNode()
	alice.apply(t, s, alice.commit(file(x, alice.Root, 1, aliceBlobs[0], aliceBlobs[1])))
	alice.apply(t, s, alice.commit(file(x, alice.Root, 2, aliceBlobs[1]), file(y, alice.Root, 1, aliceBlobs[1])))
	refs := referenced(t, s) // blob 0 in history, blob 1 live in two records and in history
	if !sameIDs(refs, aliceBlobs[:2]) {
		t.Fatalf("ReferencedBlobs = %v, want %v each once", refs, aliceBlobs[:2])
	}
}

// testCollectRacesCommit runs garbage collection while commits reference the very blobs it may
// collect: every blob ends up either referenced by a commit or collected, never both.
func testCollectRacesCommit(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	const n = 40
	blobs := make([]coffer.BlobID, n)
	for i := range blobs {
		blobs[i] = addBlob(t, s, u, 1, at(0))
	}
	var (
		wg        sync.WaitGroup
		done      atomic.Bool
		collected = map[coffer.BlobID]bool{}
		committed = map[coffer.BlobID]bool{}
	)
	wg.Go(func() {
		for {
			last := done.Load()
			bs, err := s.CollectableBlobs(t.Context(), at(time.Hour), 2)
			if err != nil {
				t.Errorf("CollectableBlobs: %v", err)
				return
			}
			for _, b := range bs {
				collected[b.ID] = true
			}
			if last && len(bs) == 0 {
				return
			}
		}
	})
	for _, b := range blobs {
		c := u.commit(file(newNode(), u.Root, 1, b))
		_, err := s.Commit(t.Context(), c)
		switch {
		case err == nil:
			u.Version = c.Version
			committed[b] = true
		case errors.Is(err, coffer.ErrNotFound):
		default:
			t.Errorf("Commit: %v", err)
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d blobs committed, %d collected first", len(committed), len(collected))
	for _, b := range blobs {
		if collected[b] == committed[b] {
			t.Errorf("blob %s: collected %v, committed %v; want exactly one", b, collected[b], committed[b])
		}
	}
	refs := referenced(t, s)
	if len(refs) != len(committed) {
		t.Errorf("%d blobs referenced, %d commits succeeded", len(refs), len(committed))
	}
	for _, id := range refs {
		if collected[id] {
			t.Errorf("blob %s was collected but is referenced", id)
		}
	}
}

// BlobCRCUpgrade checks the schema change that added blob CRC-32Cs, for a store implementation:
// a blob recorded before it keeps its row and has no CRC-32C afterwards (fsck checks those the
// old way), and blobs recorded afterwards keep theirs. s is a fresh store; downgrade takes its
// database back to the schema before the change (drop the column, forget the migration) and
// closes it; reopen opens it again, which must apply the migration.
func BlobCRCUpgrade(t *testing.T, s metastore.Store, downgrade func(ctx context.Context) error, reopen func() metastore.Store) {
	t.Helper()
	ctx := t.Context()
	u := newUser(t, s, "alice")
	old := metastore.BlobInfo{ID: sha256.Sum256([]byte("old")), Owner: u.ID, Size: 42, Created: at(time.Second)}
	must(t, "AddBlob before the downgrade", s.AddBlob(ctx, old))
	must(t, "downgrade", downgrade(ctx))
	s = reopen()
	if b, err := s.Blob(ctx, old.ID); err != nil || b != old {
		t.Fatalf("blob recorded before the migration: %+v %v, want %+v (no CRC-32C)", b, err, old)
	}
	nb := metastore.BlobInfo{ID: sha256.Sum256([]byte("new")), Owner: u.ID, Size: 7, Created: at(2 * time.Second),
		CRC32C: 0xdeadbeef, HasCRC: true}
	must(t, "AddBlob after the migration", s.AddBlob(ctx, nb))
	if b, err := s.Blob(ctx, nb.ID); err != nil || b != nb {
		t.Fatalf("blob recorded after the migration: %+v %v, want %+v", b, err, nb)
	}
}
