package metastoretest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// testHeadHistory checks metastore.HeadHistory (skipped for a store that does not implement it).
func testHeadHistory(t *testing.T, s metastore.Store) {
	hh, ok := s.(metastore.HeadHistory)
	if !ok {
		t.Skip("store does not implement metastore.HeadHistory")
	}
	ctx := t.Context()
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	heads := [][]byte{mustHead(t, s, alice.Tree)} // version 1 (the sign-up commit)
	for i := 0; i < 6; i++ {
		c := alice.commit(folder(newNode(), alice.Root, 1))
		alice.apply(t, s, c)
		heads = append(heads, c.Head)
		if i == 2 { // another tree's commit in between: not alice's history
			bob.apply(t, s, bob.commit(folder(newNode(), bob.Root, 1)))
		}
	}
	check := func(from, to uint64, limit int, want [][]byte) {
		t.Helper()
		got, err := hh.Heads(ctx, alice.Tree, from, to, limit)
		must(t, fmt.Sprintf("Heads(%d, %d, %d)", from, to, limit), err)
		if len(got) != len(want) {
			t.Fatalf("Heads(%d, %d, %d) = %d heads, want %d", from, to, limit, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("Heads(%d, %d, %d)[%d] differs", from, to, limit, i)
			}
		}
	}
	check(1, 7, 100, heads)
	check(2, 4, 100, heads[1:4])
	check(3, 100, 2, heads[2:4])
	check(7, 7, 1, heads[6:7])
	check(8, 20, 5, nil)
	bobHeads, err := hh.Heads(ctx, bob.Tree, 1, 10, 10)
	must(t, "Heads(bob)", err)
	if len(bobHeads) != 2 {
		t.Fatalf("Heads(bob) = %d heads, want 2", len(bobHeads))
	}
	_, err = hh.Heads(ctx, coffer.NewTreeID(), 1, 2, 10)
	wantErr(t, "Heads(unknown tree)", err, coffer.ErrNotFound)
	for _, bad := range [][3]int{{0, 2, 10}, {3, 2, 10}, {1, 2, 0}} {
		_, err := hh.Heads(ctx, alice.Tree, uint64(bad[0]), uint64(bad[1]), bad[2])
		wantErr(t, fmt.Sprintf("Heads%v", bad), err, coffer.ErrInvalid)
	}

	// Publications: one per (tree, session), replaced; newest first; per tree.
	none, err := hh.SeenHeads(ctx, alice.Tree, 10)
	must(t, "SeenHeads(empty)", err)
	if len(none) != 0 {
		t.Fatalf("SeenHeads before any publication = %d", len(none))
	}
	pub := func(tree coffer.TreeID, session, device string, v uint64, when time.Duration) metastore.SeenHead {
		p := metastore.SeenHead{Tree: tree, Session: session, Device: device, Version: v, Head: heads[v-1], Published: at(when)}
		must(t, "PublishSeen", hh.PublishSeen(ctx, p))
		return p
	}
	pub(alice.Tree, "s1", "laptop", 3, time.Second)
	p2 := pub(alice.Tree, "s2", "phone", 5, 2*time.Second)
	p1 := pub(alice.Tree, "s1", "laptop v2", 6, 3*time.Second) // replaces s1's publication
	pub(bob.Tree, "s3", "bob's", 1, 4*time.Second)
	got, err := hh.SeenHeads(ctx, alice.Tree, 10)
	must(t, "SeenHeads", err)
	if len(got) != 2 || !equalSeen(got[0], p1) || !equalSeen(got[1], p2) {
		t.Fatalf("SeenHeads = %+v, want s1 (v6) then s2 (v5)", got)
	}
	got, err = hh.SeenHeads(ctx, alice.Tree, 1)
	must(t, "SeenHeads(limit 1)", err)
	if len(got) != 1 || !equalSeen(got[0], p1) {
		t.Fatalf("SeenHeads(limit 1) = %+v, want s1", got)
	}
	_, err = hh.SeenHeads(ctx, alice.Tree, 0)
	wantErr(t, "SeenHeads(limit 0)", err, coffer.ErrInvalid)
	wantErr(t, "PublishSeen(unknown tree)", hh.PublishSeen(ctx, metastore.SeenHead{Tree: coffer.NewTreeID(),
		Session: "s", Version: 1, Head: heads[0], Published: at(0)}), coffer.ErrNotFound)
	for i, bad := range []metastore.SeenHead{
		{Tree: alice.Tree, Version: 1, Head: heads[0], Published: at(0)},
		{Tree: alice.Tree, Session: "s", Head: heads[0], Published: at(0)},
		{Tree: alice.Tree, Session: "s", Version: 1, Published: at(0)},
		{Tree: alice.Tree, Session: "s", Version: 1, Head: heads[0]},
	} {
		wantErr(t, fmt.Sprintf("PublishSeen(bad %d)", i), hh.PublishSeen(ctx, bad), coffer.ErrInvalid)
	}
}

func equalSeen(a, b metastore.SeenHead) bool {
	return a.Tree == b.Tree && a.Session == b.Session && a.Device == b.Device && a.Version == b.Version &&
		bytes.Equal(a.Head, b.Head) && a.Published.Equal(b.Published)
}
