package metastoretest

import (
	"bytes"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// testLinks checks metastore.Links (skipped for a store that does not implement it).
func testLinks(t *testing.T, s metastore.Store) {
	ls, ok := s.(metastore.Links)
	if !ok {
		t.Skip("store does not implement metastore.Links")
	}
	ctx := t.Context()
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	newLink := func(u *user, created time.Time) metastore.Link {
		var id [16]byte
		rand.Read(id[:])
		return metastore.Link{ID: id, Owner: u.ID, Tree: u.Tree, Node: u.Root, Record: rnd(295),
			Verifier: rnd(32), Created: created}
	}

	// Create, get, duplicate, unknown owner, invalid values.
	l1 := newLink(alice, at(time.Second))
	l1.Expires, l1.MaxDownloads, l1.MaxUploads = at(time.Hour), 2, 7
	must(t, "CreateLink", ls.CreateLink(ctx, l1))
	got, err := ls.Link(ctx, l1.ID)
	must(t, "Link", err)
	if !equalLink(got, l1) {
		t.Fatalf("Link = %+v, want %+v", got, l1)
	}
	wantErr(t, "CreateLink(same id)", ls.CreateLink(ctx, l1), coffer.ErrExist)
	ghost := newLink(alice, at(0))
	ghost.Owner = coffer.NewAccountID()
	wantErr(t, "CreateLink(unknown owner)", ls.CreateLink(ctx, ghost), coffer.ErrNotFound)
	neg := newLink(alice, at(0))
	neg.MaxDownloads = -1
	wantErr(t, "CreateLink(negative max)", ls.CreateLink(ctx, neg), coffer.ErrInvalid)
	zero := newLink(alice, time.Time{})
	wantErr(t, "CreateLink(zero created)", ls.CreateLink(ctx, zero), coffer.ErrInvalid)
	_, err = ls.Link(ctx, [16]byte{1})
	wantErr(t, "Link(unknown)", err, coffer.ErrNotFound)

	// List: newest first, per owner; a never-expiring link keeps a zero Expires.
	l2 := newLink(alice, at(2*time.Second))
	must(t, "CreateLink", ls.CreateLink(ctx, l2))
	lb := newLink(bob, at(3*time.Second))
	must(t, "CreateLink", ls.CreateLink(ctx, lb))
	list, err := ls.ListLinks(ctx, alice.ID)
	must(t, "ListLinks", err)
	if len(list) != 2 || list[0].ID != l2.ID || list[1].ID != l1.ID || !list[0].Expires.IsZero() {
		t.Fatalf("ListLinks(alice) = %d links, want l2 then l1 (l2 without expiry)", len(list))
	}
	if list, err := ls.ListLinks(ctx, coffer.NewAccountID()); err != nil || len(list) != 0 {
		t.Fatalf("ListLinks(unknown) = %d, %v; want none", len(list), err)
	}

	// UseLink counts up to MaxDownloads, then refuses without counting.
	for i := int64(1); i <= 2; i++ {
		u, err := ls.UseLink(ctx, l1.ID, at(time.Minute))
		must(t, "UseLink", err)
		if u.Downloads != i {
			t.Fatalf("UseLink #%d: Downloads = %d", i, u.Downloads)
		}
	}
	_, err = ls.UseLink(ctx, l1.ID, at(time.Minute))
	wantErr(t, "UseLink(used up)", err, coffer.ErrForbidden)
	if got, _ := ls.Link(ctx, l1.ID); got.Downloads != 2 {
		t.Fatalf("Downloads after refusal = %d, want 2", got.Downloads)
	}
	_, err = ls.UseLink(ctx, [16]byte{2}, at(0))
	wantErr(t, "UseLink(unknown)", err, coffer.ErrNotFound)

	// Expiry: usable before, refused at and after.
	l3 := newLink(alice, at(0))
	l3.Expires = at(time.Hour)
	must(t, "CreateLink", ls.CreateLink(ctx, l3))
	_, err = ls.UseLink(ctx, l3.ID, at(time.Hour-time.Microsecond))
	must(t, "UseLink(before expiry)", err)
	_, err = ls.UseLink(ctx, l3.ID, at(time.Hour))
	wantErr(t, "UseLink(at expiry)", err, coffer.ErrForbidden)

	// Revocation: only by the owner; idempotent; refuses use.
	wantErr(t, "RevokeLink(other owner)", ls.RevokeLink(ctx, bob.ID, l2.ID), coffer.ErrNotFound)
	wantErr(t, "RevokeLink(unknown)", ls.RevokeLink(ctx, alice.ID, [16]byte{3}), coffer.ErrNotFound)
	must(t, "RevokeLink", ls.RevokeLink(ctx, alice.ID, l2.ID))
	must(t, "RevokeLink again", ls.RevokeLink(ctx, alice.ID, l2.ID))
	if got, _ := ls.Link(ctx, l2.ID); !got.Revoked {
		t.Fatal("revoked link not marked revoked")
	}
	_, err = ls.UseLink(ctx, l2.ID, at(0))
	wantErr(t, "UseLink(revoked)", err, coffer.ErrForbidden)

	// Concurrent opens never count past MaxDownloads.
	l4 := newLink(alice, at(0))
	l4.MaxDownloads = 5
	must(t, "CreateLink", ls.CreateLink(ctx, l4))
	var wg sync.WaitGroup
	var okN atomic.Int64
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ls.UseLink(ctx, l4.ID, at(0)); err == nil {
				okN.Add(1)
			}
		}()
	}
	wg.Wait()
	if okN.Load() != 5 {
		t.Fatalf("%d concurrent opens succeeded, want exactly 5", okN.Load())
	}
}

// testLinkBlobNodes checks LinkBlobNodes: only live records' current versions count.
func testLinkBlobNodes(t *testing.T, s metastore.Store) {
	ls, ok := s.(metastore.Links)
	if !ok {
		t.Skip("store does not implement metastore.Links")
	}
	ctx := t.Context()
	u := newUser(t, s, "alice")
	b1 := addBlob(t, s, u, 10, at(0))
	b2 := addBlob(t, s, u, 10, at(0))
	f1, f2 := newNode(), newNode()
	u.apply(t, s, u.commit(file(f1, u.Root, 1, b1), file(f2, u.Root, 1, b1)))
	nodes, err := ls.LinkBlobNodes(ctx, u.Tree, b1)
	must(t, "LinkBlobNodes", err)
	want := []coffer.NodeID{f1, f2}
	if bytes.Compare(f1[:], f2[:]) > 0 {
		want = []coffer.NodeID{f2, f1}
	}
	if len(nodes) != 2 || nodes[0] != want[0] || nodes[1] != want[1] {
		t.Fatalf("LinkBlobNodes(b1) = %v, want %v", nodes, want)
	}
	// f1's new version references b2 only (the old version is kept in history: not live).
	u.apply(t, s, u.commit(file(f1, u.Root, 2, b2)))
	if nodes, _ := ls.LinkBlobNodes(ctx, u.Tree, b1); len(nodes) != 1 || nodes[0] != f2 {
		t.Fatalf("LinkBlobNodes(b1) after replace = %v, want [f2]", nodes)
	}
	if nodes, _ := ls.LinkBlobNodes(ctx, u.Tree, b2); len(nodes) != 1 || nodes[0] != f1 {
		t.Fatalf("LinkBlobNodes(b2) = %v, want [f1]", nodes)
	}
	// Another tree, or an unreferenced blob: none.
	if nodes, err := ls.LinkBlobNodes(ctx, coffer.NewTreeID(), b2); err != nil || len(nodes) != 0 {
		t.Fatalf("LinkBlobNodes(other tree) = %v, %v", nodes, err)
	}
	u.apply(t, s, u.commit(tombstone(f2, u.Root, 2)))
	if nodes, err := ls.LinkBlobNodes(ctx, u.Tree, b1); err != nil || len(nodes) != 0 {
		t.Fatalf("LinkBlobNodes(b1) after tombstone = %v, %v", nodes, err)
	}
}

func equalLink(a, b metastore.Link) bool {
	return a.ID == b.ID && a.Owner == b.Owner && a.Tree == b.Tree && a.Node == b.Node &&
		bytes.Equal(a.Record, b.Record) && bytes.Equal(a.Verifier, b.Verifier) &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) && a.MaxDownloads == b.MaxDownloads &&
		a.Downloads == b.Downloads && a.Revoked == b.Revoked && a.MaxUploads == b.MaxUploads && a.Uploads == b.Uploads
}
