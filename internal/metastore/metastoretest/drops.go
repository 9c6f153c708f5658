package metastoretest

import (
	"bytes"
	"crypto/rand"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// testDrops checks metastore.Drops (skipped for a store that does not implement it).
func testDrops(t *testing.T, s metastore.Store) {
	ds, ok := s.(metastore.Drops)
	if !ok {
		t.Skip("store does not implement metastore.Drops")
	}
	ls := s.(metastore.Links)
	ctx := t.Context()
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	newLink := func(u *user) metastore.Link {
		l := metastore.Link{Owner: u.ID, Tree: u.Tree, Node: u.Root, Record: rnd(295), Verifier: rnd(32), Created: at(0)}
		rand.Read(l.ID[:])
		must(t, "CreateLink", ls.CreateLink(ctx, l))
		return l
	}
	newDrop := func(l metastore.Link, blobs ...coffer.BlobID) metastore.Drop {
		d := metastore.Drop{Link: l.ID, Owner: l.Owner, Record: rnd(100), Blobs: blobs, Created: at(time.Second)}
		rand.Read(d.ID[:])
		return d
	}
	l := newLink(alice)
	b1, b2 := addBlob(t, s, alice, 10, at(0)), addBlob(t, s, alice, 20, at(0))
	bobBlob := addBlob(t, s, bob, 30, at(0))

	// Create: counts an upload; the blobs are kept from GC while the drop exists.
	d1 := newDrop(l, b1, b2)
	got, err := ds.CreateDrop(ctx, d1, at(time.Second))
	must(t, "CreateDrop", err)
	if got.Uploads != 1 || got.ID != l.ID {
		t.Fatalf("CreateDrop returned uploads %d", got.Uploads)
	}
	if stored, _ := ls.Link(ctx, l.ID); stored.Uploads != 1 {
		t.Fatalf("Uploads = %d, want 1", stored.Uploads)
	}
	if ids := collect(t, s, at(time.Hour), 10); len(ids) != 1 || ids[0] != bobBlob {
		t.Fatalf("collected %d blobs, want only bob's unreferenced one (not those of a pending drop)", len(ids))
	}
	wantErr(t, "CreateDrop(same id)", func() error { _, err := ds.CreateDrop(ctx, d1, at(time.Second)); return err }(), coffer.ErrExist)

	// Refusals: unknown blob, another account's blob, another account's link, unknown link,
	// zero time. None counts an upload.
	for name, d := range map[string]metastore.Drop{
		"unknown blob": newDrop(l, coffer.BlobID{1}),
		"bob's blob":   newDrop(l, b1, addBlob(t, s, bob, 30, at(time.Hour))),
		"bob's link": func() metastore.Drop {
			d := newDrop(l)
			d.Owner = bob.ID
			return d
		}(),
		"unknown link": func() metastore.Drop {
			d := newDrop(l)
			d.Link = [16]byte{9}
			return d
		}(),
	} {
		_, err := ds.CreateDrop(ctx, d, at(time.Second))
		wantErr(t, "CreateDrop("+name+")", err, coffer.ErrNotFound)
	}
	zero := newDrop(l)
	zero.Created = time.Time{}
	_, err = ds.CreateDrop(ctx, zero, at(time.Second))
	wantErr(t, "CreateDrop(zero created)", err, coffer.ErrInvalid)
	if stored, _ := ls.Link(ctx, l.ID); stored.Uploads != 1 {
		t.Fatalf("Uploads after refusals = %d, want 1", stored.Uploads)
	}

	// List: by Seq, per owner, with their blobs; paging with after.
	d2 := newDrop(l)
	_, err = ds.CreateDrop(ctx, d2, at(time.Second))
	must(t, "CreateDrop", err)
	list, err := ds.Drops(ctx, alice.ID, 0, 10)
	must(t, "Drops", err)
	if len(list) != 2 || list[0].ID != d1.ID || list[1].ID != d2.ID || list[0].Seq >= list[1].Seq ||
		!bytes.Equal(list[0].Record, d1.Record) || list[0].Link != l.ID || !list[0].Created.Equal(d1.Created) {
		t.Fatalf("Drops = %+v", list)
	}
	want := []coffer.BlobID{b1, b2}
	slices.SortFunc(want, func(a, b coffer.BlobID) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(list[0].Blobs, want) || len(list[1].Blobs) != 0 {
		t.Fatalf("drop blobs = %v / %v, want %v / none", list[0].Blobs, list[1].Blobs, want)
	}
	if page, err := ds.Drops(ctx, alice.ID, list[0].Seq, 10); err != nil || len(page) != 1 || page[0].ID != d2.ID {
		t.Fatalf("Drops(after first) = %d, %v", len(page), err)
	}
	if page, err := ds.Drops(ctx, bob.ID, 0, 10); err != nil || len(page) != 0 {
		t.Fatalf("Drops(bob) = %d, %v", len(page), err)
	}
	_, err = ds.Drops(ctx, alice.ID, 0, 0)
	wantErr(t, "Drops(limit 0)", err, coffer.ErrInvalid)
	if n, err := ds.PendingDrops(ctx, alice.ID); err != nil || n != 2 {
		t.Fatalf("PendingDrops = %d, %v; want 2", n, err)
	}

	// Delete: only the owner's; the blobs become collectable.
	wantErr(t, "DeleteDrop(bob)", ds.DeleteDrop(ctx, bob.ID, d1.ID), coffer.ErrNotFound)
	wantErr(t, "DeleteDrop(unknown)", ds.DeleteDrop(ctx, alice.ID, [16]byte{4}), coffer.ErrNotFound)
	must(t, "DeleteDrop", ds.DeleteDrop(ctx, alice.ID, d1.ID))
	wantErr(t, "DeleteDrop(again)", ds.DeleteDrop(ctx, alice.ID, d1.ID), coffer.ErrNotFound)
	if ids := collect(t, s, at(time.Hour), 10); len(ids) != 2 { // b1, b2
		t.Fatalf("collected %d blobs after the drop was deleted, want 3", len(ids))
	}
	if n, _ := ds.PendingDrops(ctx, alice.ID); n != 1 {
		t.Fatalf("PendingDrops after delete = %d, want 1", n)
	}
	// Batch delete: only the owner's, missing ones ignored.
	if n, err := ds.DeleteDrops(ctx, bob.ID, [][16]byte{d2.ID}); err != nil || n != 0 {
		t.Fatalf("DeleteDrops(bob) = %d, %v", n, err)
	}
	d3 := newDrop(l, b1)
	b1again := addBlob(t, s, alice, 5, at(0))
	d3.Blobs = []coffer.BlobID{b1again}
	_, err = ds.CreateDrop(ctx, d3, at(time.Second))
	must(t, "CreateDrop", err)
	if n, err := ds.DeleteDrops(ctx, alice.ID, [][16]byte{d2.ID, d1.ID, d3.ID, {7}}); err != nil || n != 2 {
		t.Fatalf("DeleteDrops = %d, %v; want 2", n, err)
	}
	if n, _ := ds.PendingDrops(ctx, alice.ID); n != 0 {
		t.Fatalf("PendingDrops after DeleteDrops = %d, want 0", n)
	}
	if ids := collect(t, s, at(time.Hour), 10); len(ids) != 1 || ids[0] != b1again {
		t.Fatalf("collected %v after DeleteDrops, want the drop's blob", ids)
	}

	// A revoked, expired or used-up link refuses drops without counting.
	exp := newLink(alice)
	_, err = ds.CreateDrop(ctx, newDrop(exp), at(0))
	must(t, "CreateDrop", err)
	must(t, "RevokeLink", ls.RevokeLink(ctx, alice.ID, exp.ID))
	_, err = ds.CreateDrop(ctx, newDrop(exp), at(0))
	wantErr(t, "CreateDrop(revoked)", err, coffer.ErrForbidden)
	lim := metastore.Link{Owner: alice.ID, Tree: alice.Tree, Node: alice.Root, Record: rnd(295), Verifier: rnd(32),
		Created: at(0), Expires: at(time.Hour), MaxUploads: 4}
	rand.Read(lim.ID[:])
	must(t, "CreateLink", ls.CreateLink(ctx, lim))
	_, err = ds.CreateDrop(ctx, newDrop(lim), at(time.Hour))
	wantErr(t, "CreateDrop(expired)", err, coffer.ErrForbidden)
	var wg sync.WaitGroup
	var okN atomic.Int64
	for range 10 {
		wg.Go(func() {
			if _, err := ds.CreateDrop(ctx, newDrop(lim), at(0)); err == nil {
				okN.Add(1)
			}
		})
	}
	wg.Wait()
	if stored, _ := ls.Link(ctx, lim.ID); okN.Load() != 4 || stored.Uploads != 4 {
		t.Fatalf("%d concurrent drops succeeded (uploads %d), want exactly 4", okN.Load(), stored.Uploads)
	}
}

// testDropQuota checks that pending drop records count against the owner's quota.
func testDropQuota(t *testing.T, s metastore.Store) {
	ds, ok := s.(metastore.Drops)
	if !ok {
		t.Skip("store does not implement metastore.Drops")
	}
	ls := s.(metastore.Links)
	ctx := t.Context()
	a := account("quota")
	a.Quota = 1000
	u := &user{Account: a, Root: newNode()}
	_, err := s.CreateAccount(ctx, a, "", u.commit(folder(u.Root, coffer.NodeID{}, 1)))
	must(t, "CreateAccount", err)
	u.Version = 1
	l := metastore.Link{Owner: u.ID, Tree: u.Tree, Node: u.Root, Record: rnd(295), Verifier: rnd(32), Created: at(0)}
	rand.Read(l.ID[:])
	must(t, "CreateLink", ls.CreateLink(ctx, l))
	b := addBlob(t, s, u, 600, at(0))
	d := metastore.Drop{Link: l.ID, Owner: u.ID, Record: rnd(300), Blobs: []coffer.BlobID{b}, Created: at(0)}
	rand.Read(d.ID[:])
	_, err = ds.CreateDrop(ctx, d, at(0))
	must(t, "CreateDrop", err)
	d2 := metastore.Drop{Link: l.ID, Owner: u.ID, Record: rnd(101), Created: at(0)}
	rand.Read(d2.ID[:])
	_, err = ds.CreateDrop(ctx, d2, at(0))
	wantErr(t, "CreateDrop over quota", err, coffer.ErrQuota)
	d2.Record = rnd(100) // exactly at quota
	_, err = ds.CreateDrop(ctx, d2, at(0))
	must(t, "CreateDrop at quota", err)
}
