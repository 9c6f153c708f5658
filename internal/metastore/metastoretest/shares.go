package metastoretest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// sharedTree is a shared tree the suite created, with its state as the test knows it.
type sharedTree struct {
	user // Tree is the shared tree, ID its owner
	gen  uint64
}

// newShared creates a shared tree owned by owner with invites for members (role write).
func newShared(t *testing.T, ss metastore.Shares, owner *user, members ...*user) (*sharedTree, []metastore.Notice) {
	t.Helper()
	st := &sharedTree{user: user{Account: owner.Account, Root: newNode()}, gen: 1}
	st.Tree = coffer.NewTreeID()
	c := st.commit(folder(st.Root, coffer.NodeID{}, 1))
	r := metastore.Roster{Tree: st.Tree, Owner: owner.ID, Generation: 1, Epoch: 1, Roster: []byte("roster g1")}
	var invites []metastore.ShareInvite
	for _, m := range members {
		invites = append(invites, metastore.ShareInvite{Account: m.ID, Role: 2, Epoch: 1, Invite: fmt.Appendf(nil, "invite %s e1", m.Username)})
	}
	ns, err := ss.CreateShare(t.Context(), c, r, invites, at(time.Second))
	if err != nil {
		t.Fatalf("CreateShare: %v", err)
	}
	st.Version = 1
	return st, ns
}

func noticeFor(ns []metastore.Notice, acct coffer.AccountID) (coffer.Seq, bool) {
	for _, n := range ns {
		if n.Account == acct {
			return n.Seq, true
		}
	}
	return 0, false
}

// lastChange returns acct's latest feed entry.
func lastChange(t *testing.T, s metastore.Store, acct coffer.AccountID) metastore.ChangeEntry {
	t.Helper()
	seq := latestSeq(t, s, acct)
	cs := changes(t, s, acct, seq-1, 1)
	if len(cs) != 1 {
		t.Fatalf("no change %d for %s", seq, acct)
	}
	return cs[0]
}

// testShares checks metastore.Shares (skipped for a store that does not implement it).
func testShares(t *testing.T, s metastore.Store) {
	ss, ok := s.(metastore.Shares)
	if !ok {
		t.Skip("store does not implement metastore.Shares")
	}
	ctx := t.Context()
	alice, bob, carol, dave := newUser(t, s, "alice"), newUser(t, s, "bob"), newUser(t, s, "carol"), newUser(t, s, "dave")

	// Create: the owner's feed gets the commit, each invitee a sharing event.
	st, ns := newShared(t, ss, alice, bob, carol)
	if len(ns) != 3 || ns[0].Account != alice.ID || ns[0].Seq != latestSeq(t, s, alice.ID) {
		t.Fatalf("CreateShare notices = %+v, want alice's commit first then bob and carol", ns)
	}
	if e := lastChange(t, s, bob.ID); e.Tree != st.Tree || e.Version != 0 || len(e.Head) != 0 || len(e.Ops) != 0 {
		t.Fatalf("bob's sharing event = %+v", e)
	}
	if seq, ok := noticeFor(ns, bob.ID); !ok || seq != latestSeq(t, s, bob.ID) {
		t.Fatal("bob's notice does not name his latest seq")
	}
	if h, err := s.Head(ctx, st.Tree); err != nil || h.Owner != alice.ID || h.Version != 1 {
		t.Fatalf("Head(shared) = %+v, %v", h, err)
	}
	r, err := ss.Roster(ctx, st.Tree)
	must(t, "Roster", err)
	if r.Tree != st.Tree || r.Owner != alice.ID || r.Generation != 1 || r.Epoch != 1 || string(r.Roster) != "roster g1" {
		t.Fatalf("Roster = %+v", r)
	}
	_, err = ss.Roster(ctx, alice.Tree)
	wantErr(t, "Roster(account tree)", err, coffer.ErrNotFound)
	m, err := ss.Membership(ctx, st.Tree, bob.ID)
	must(t, "Membership", err)
	if m.Owner != alice.ID || m.Status != metastore.MemberInvited || m.Role != 2 || m.Epoch != 1 || string(m.Invite) != "invite bob e1" || !m.Updated.Equal(at(time.Second)) {
		t.Fatalf("Membership = %+v", m)
	}
	_, err = ss.Membership(ctx, st.Tree, dave.ID)
	wantErr(t, "Membership(dave)", err, coffer.ErrNotFound)

	// Refusals of CreateShare.
	bad := &sharedTree{user: user{Account: alice.Account, Root: newNode()}}
	bad.Tree = coffer.NewTreeID()
	c := bad.commit(folder(bad.Root, coffer.NodeID{}, 1))
	_, err = ss.CreateShare(ctx, c, metastore.Roster{Tree: bad.Tree, Owner: alice.ID, Generation: 1, Epoch: 1}, []metastore.ShareInvite{{Account: alice.ID, Role: 1, Epoch: 1}}, at(0))
	wantErr(t, "CreateShare(invite owner)", err, coffer.ErrInvalid)
	_, err = ss.CreateShare(ctx, c, metastore.Roster{Tree: coffer.NewTreeID(), Owner: alice.ID, Generation: 1, Epoch: 1}, nil, at(0))
	wantErr(t, "CreateShare(other tree)", err, coffer.ErrInvalid)
	_, err = ss.CreateShare(ctx, c, metastore.Roster{Tree: bad.Tree, Owner: alice.ID, Generation: 1, Epoch: 1}, []metastore.ShareInvite{{Account: coffer.NewAccountID(), Role: 1, Epoch: 1}}, at(0))
	wantErr(t, "CreateShare(unknown invitee)", err, coffer.ErrNotFound)
	if _, err := s.Head(ctx, bad.Tree); err == nil {
		t.Fatal("a refused CreateShare left its tree behind")
	}
	_, err = ss.CreateShare(ctx, st.commit(folder(newNode(), coffer.NodeID{}, 1)), metastore.Roster{Tree: st.Tree, Owner: alice.ID, Generation: 1, Epoch: 1}, nil, at(0))
	if err == nil {
		t.Fatal("CreateShare on an existing tree succeeded")
	}

	// Accept, decline, leave.
	_, err = ss.SetMemberStatus(ctx, st.Tree, bob.ID, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberAccepted, 2, at(2*time.Second))
	wantErr(t, "accept(wrong epoch)", err, coffer.ErrConflict)
	aliceSeq := latestSeq(t, s, alice.ID)
	ns, err = ss.SetMemberStatus(ctx, st.Tree, bob.ID, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberAccepted, 1, at(2*time.Second))
	must(t, "accept", err)
	if len(ns) != 2 || latestSeq(t, s, alice.ID) != aliceSeq+1 {
		t.Fatalf("accept notices = %+v; the owner's feed must get an event", ns)
	}
	_, err = ss.SetMemberStatus(ctx, st.Tree, bob.ID, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberAccepted, 1, at(2*time.Second))
	must(t, "accept again", err)
	_, err = ss.SetMemberStatus(ctx, st.Tree, carol.ID, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberDeclined, 0, at(2*time.Second))
	must(t, "decline", err)
	_, err = ss.SetMemberStatus(ctx, st.Tree, carol.ID, []metastore.MemberStatus{metastore.MemberAccepted}, metastore.MemberLeft, 0, at(2*time.Second))
	wantErr(t, "leave(declined)", err, coffer.ErrNotFound)
	_, err = ss.SetMemberStatus(ctx, st.Tree, dave.ID, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberAccepted, 1, at(0))
	wantErr(t, "accept(no invite)", err, coffer.ErrNotFound)

	// A commit fans out to the owner and accepted members only.
	carolSeq := latestSeq(t, s, carol.ID)
	f := newNode()
	c = st.commit(folder(f, st.Root, 1))
	ns, err = ss.CommitShared(ctx, c)
	must(t, "CommitShared", err)
	st.Version = c.Version
	if len(ns) != 2 || ns[0].Account != alice.ID || ns[1].Account != bob.ID {
		t.Fatalf("CommitShared notices = %+v, want alice then bob", ns)
	}
	if e := lastChange(t, s, bob.ID); e.Tree != st.Tree || e.Version != c.Version || !bytes.Equal(e.Head, c.Head) || !bytes.Equal(e.Ops, c.Ops) || e.Seq != ns[1].Seq {
		t.Fatalf("bob's change = %+v", e)
	}
	if latestSeq(t, s, carol.ID) != carolSeq {
		t.Fatal("a declined member got the commit")
	}
	// CommitShared on an account tree feeds only the owner; conflicts are refused as by Commit.
	ns, err = ss.CommitShared(ctx, dave.commit(folder(newNode(), dave.Root, 1)))
	must(t, "CommitShared(account tree)", err)
	dave.Version++
	if len(ns) != 1 || ns[0].Account != dave.ID {
		t.Fatalf("CommitShared(account tree) notices = %+v", ns)
	}
	_, err = ss.CommitShared(ctx, st.commit(folder(newNode(), st.Root, 1)))
	if err != nil {
		t.Fatalf("CommitShared: %v", err)
	}
	st.Version++
	stale := c
	_, err = ss.CommitShared(ctx, stale)
	wantErr(t, "CommitShared(stale base)", err, coffer.ErrConflict)

	// Roster update: stale generation or head is a conflict; a revoke with a commit is atomic.
	upd := func(gen uint64, head uint64, commit *metastore.Commit, removed []coffer.AccountID, invites ...metastore.ShareInvite) metastore.RosterUpdate {
		return metastore.RosterUpdate{Roster: metastore.Roster{Tree: st.Tree, Owner: alice.ID, Generation: gen, Epoch: 2, Roster: fmt.Appendf(nil, "roster g%d", gen)},
			HeadVersion: head, Removed: removed, Invites: invites, Commit: commit, Now: at(3 * time.Second)}
	}
	_, err = ss.UpdateRoster(ctx, upd(3, st.Version, nil, nil))
	wantErr(t, "UpdateRoster(generation 3)", err, coffer.ErrConflict)
	_, err = ss.UpdateRoster(ctx, upd(2, st.Version-1, nil, nil))
	wantErr(t, "UpdateRoster(old head)", err, coffer.ErrConflict)
	u := upd(2, st.Version, nil, nil)
	u.Roster.Owner = bob.ID
	_, err = ss.UpdateRoster(ctx, u)
	if err == nil {
		t.Fatal("UpdateRoster by a non-owner succeeded")
	}
	u = upd(2, alice.Version, nil, nil)
	u.Roster.Tree = alice.Tree
	_, err = ss.UpdateRoster(ctx, u)
	wantErr(t, "UpdateRoster(account tree)", err, coffer.ErrNotFound)

	// Revoke bob (accepted), re-key carol, invite dave, with a rotation commit.
	rot := st.commit(folder(f, st.Root, 2))
	rot.Records[0].Node.Record = []byte("rotated")
	bobSeq, daveSeq := latestSeq(t, s, bob.ID), latestSeq(t, s, dave.ID)
	ns, err = ss.UpdateRoster(ctx, upd(2, st.Version, &rot, []coffer.AccountID{bob.ID},
		metastore.ShareInvite{Account: carol.ID, Role: 1, Epoch: 2, Invite: []byte("carol e2")},
		metastore.ShareInvite{Account: dave.ID, Role: 2, Epoch: 2, Invite: []byte("dave e2")}))
	must(t, "UpdateRoster(revoke)", err)
	st.Version = rot.Version
	st.gen = 2
	if r, _ := ss.Roster(ctx, st.Tree); r.Generation != 2 || r.Epoch != 2 || string(r.Roster) != "roster g2" {
		t.Fatalf("Roster after update = %+v", r)
	}
	if h, _ := s.Head(ctx, st.Tree); h.Version != rot.Version {
		t.Fatalf("rotation commit not applied: head v%d", h.Version)
	}
	if m, _ := ss.Membership(ctx, st.Tree, bob.ID); m.Status != metastore.MemberRemoved {
		t.Fatalf("bob after revoke = %s", m.Status)
	}
	if m, _ := ss.Membership(ctx, st.Tree, carol.ID); m.Status != metastore.MemberInvited || m.Epoch != 2 || m.Role != 1 || string(m.Invite) != "carol e2" {
		t.Fatalf("carol after re-invite = %+v", m)
	}
	// Bob (removed before the commit) gets only the sharing event; dave his event.
	if latestSeq(t, s, bob.ID) != bobSeq+1 || lastChange(t, s, bob.ID).Version != 0 {
		t.Fatal("bob: want exactly one sharing event, no commit entry")
	}
	if latestSeq(t, s, dave.ID) != daveSeq+1 {
		t.Fatal("dave: want one sharing event")
	}
	if _, ok := noticeFor(ns, alice.ID); !ok {
		t.Fatal("no notice for the owner")
	}
	// A removed member cannot accept; a re-key keeps an accepted member accepted.
	_, err = ss.SetMemberStatus(ctx, st.Tree, bob.ID, []metastore.MemberStatus{metastore.MemberInvited, metastore.MemberDeclined}, metastore.MemberAccepted, 0, at(0))
	wantErr(t, "accept(removed)", err, coffer.ErrNotFound)
	_, err = ss.SetMemberStatus(ctx, st.Tree, dave.ID, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberAccepted, 2, at(4*time.Second))
	must(t, "dave accepts", err)
	_, err = ss.UpdateRoster(ctx, upd(3, st.Version, nil, nil, metastore.ShareInvite{Account: dave.ID, Role: 2, Epoch: 2, Invite: []byte("dave e2 again")}))
	must(t, "UpdateRoster(re-key)", err)
	if m, _ := ss.Membership(ctx, st.Tree, dave.ID); m.Status != metastore.MemberAccepted || string(m.Invite) != "dave e2 again" {
		t.Fatalf("dave after re-key = %+v", m)
	}
	// A failed update with a commit changes nothing (the commit's blob is missing).
	missing := st.commit(file(newNode(), st.Root, 1, coffer.BlobID(sha256.Sum256([]byte("nope")))))
	_, err = ss.UpdateRoster(ctx, upd(4, st.Version, &missing, []coffer.AccountID{dave.ID}))
	wantErr(t, "UpdateRoster(missing blob)", err, coffer.ErrNotFound)
	if r, _ := ss.Roster(ctx, st.Tree); r.Generation != 3 {
		t.Fatalf("failed update moved the roster to generation %d", r.Generation)
	}
	if m, _ := ss.Membership(ctx, st.Tree, dave.ID); m.Status != metastore.MemberAccepted {
		t.Fatal("failed update removed dave")
	}

	// Listings.
	ms, err := ss.Memberships(ctx, st.Tree)
	must(t, "Memberships", err)
	if len(ms) != 3 {
		t.Fatalf("Memberships = %d rows, want 3", len(ms))
	}
	for i := 1; i < len(ms); i++ {
		if bytes.Compare(ms[i-1].Account[:], ms[i].Account[:]) >= 0 {
			t.Fatal("Memberships not sorted by account")
		}
	}
	st2, _ := newShared(t, ss, bob, dave)
	mine, err := ss.AccountShares(ctx, dave.ID)
	must(t, "AccountShares", err)
	if len(mine) != 2 || bytes.Compare(mine[0].Tree[:], mine[1].Tree[:]) >= 0 {
		t.Fatalf("AccountShares(dave) = %d rows (want 2, sorted by tree)", len(mine))
	}
	for _, m := range mine {
		if (m.Tree == st2.Tree && m.Owner != bob.ID) || (m.Tree == st.Tree && m.Owner != alice.ID) {
			t.Fatalf("AccountShares: wrong owner for %s", m.Tree)
		}
	}
	owned, err := ss.OwnedShares(ctx, alice.ID)
	must(t, "OwnedShares", err)
	if len(owned) != 1 || owned[0].Tree != st.Tree || owned[0].Generation != 3 {
		t.Fatalf("OwnedShares(alice) = %+v", owned)
	}
	if none, err := ss.OwnedShares(ctx, carol.ID); err != nil || len(none) != 0 {
		t.Fatalf("OwnedShares(carol) = %d, %v", len(none), err)
	}

	// TreeBlob: live and kept references count, per tree.
	b := addBlob(t, s, alice, 10, at(0))
	fn := newNode()
	c = st.commit(file(fn, st.Root, 1, b))
	_, err = ss.CommitShared(ctx, c)
	must(t, "CommitShared(file)", err)
	st.Version++
	if ok, err := ss.TreeBlob(ctx, st.Tree, b); err != nil || !ok {
		t.Fatalf("TreeBlob(live) = %v, %v", ok, err)
	}
	if ok, err := ss.TreeBlob(ctx, alice.Tree, b); err != nil || ok {
		t.Fatalf("TreeBlob(other tree) = %v, %v", ok, err)
	}
	c = st.commit(file(fn, st.Root, 2))
	c.Records[0].Node.Hash = sha256.Sum256([]byte("v2"))
	_, err = ss.CommitShared(ctx, c)
	must(t, "CommitShared(file v2)", err)
	if ok, err := ss.TreeBlob(ctx, st.Tree, b); err != nil || !ok {
		t.Fatalf("TreeBlob(kept version) = %v, %v", ok, err)
	}
}

// testSharesConcurrent races commits to a shared tree, the members' own commits, status changes
// and roster updates: every call succeeds or reports ErrConflict (never a deadlock or another
// error), and every feed stays gap-free.
func testSharesConcurrent(t *testing.T, s metastore.Store) {
	ss, ok := s.(metastore.Shares)
	if !ok {
		t.Skip("store does not implement metastore.Shares")
	}
	ctx := t.Context()
	alice, bob, carol := newUser(t, s, "alice"), newUser(t, s, "bob"), newUser(t, s, "carol")
	st, _ := newShared(t, ss, alice, bob, carol)
	for _, m := range []*user{bob, carol} {
		if _, err := ss.SetMemberStatus(ctx, st.Tree, m.ID, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberAccepted, 1, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 15
	errs := make(chan error, 8*rounds)
	var wg sync.WaitGroup
	ok2 := func(err error) {
		if err != nil && !errors.Is(err, coffer.ErrConflict) {
			errs <- err
		}
	}
	// Commits to the shared tree (retrying on a moved head).
	wg.Go(func() {
		for range rounds {
			for {
				h, err := s.Head(ctx, st.Tree)
				if err != nil {
					errs <- err
					return
				}
				c := metastore.Commit{Tree: st.Tree, Owner: alice.ID, BaseVersion: h.Version, Version: h.Version + 1,
					Head: rnd(16), Ops: rnd(8), KeepVersions: 10, Records: []metastore.CommitRecord{folder(newNode(), st.Root, 1)}}
				_, err = ss.CommitShared(ctx, c)
				if !errors.Is(err, coffer.ErrConflict) {
					ok2(err)
					break
				}
			}
		}
	})
	// The members' own trees.
	for _, m := range []*user{bob, carol} {
		wg.Go(func() {
			for range rounds {
				_, err := ss.CommitShared(ctx, m.commit(folder(newNode(), m.Root, 1)))
				if err != nil {
					errs <- err
					return
				}
				m.Version++
			}
		})
	}
	// Status changes (idempotent accepts: each still appends events for carol and alice).
	wg.Go(func() {
		for range rounds {
			_, err := ss.SetMemberStatus(ctx, st.Tree, carol.ID, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberAccepted, 0, at(0))
			ok2(err)
		}
	})
	// Roster updates with re-key invites (CAS on generation and head: conflicts are expected).
	wg.Go(func() {
		for i := range rounds {
			r, err := ss.Roster(ctx, st.Tree)
			if err != nil {
				errs <- err
				return
			}
			h, err := s.Head(ctx, st.Tree)
			if err != nil {
				errs <- err
				return
			}
			_, err = ss.UpdateRoster(ctx, metastore.RosterUpdate{
				Roster:      metastore.Roster{Tree: st.Tree, Owner: alice.ID, Generation: r.Generation + 1, Epoch: 1, Roster: fmt.Appendf(nil, "g%d", i)},
				HeadVersion: h.Version, Now: at(0),
				Invites: []metastore.ShareInvite{{Account: bob.ID, Role: 2, Epoch: 1, Invite: []byte("re")},
					{Account: carol.ID, Role: 2, Epoch: 1, Invite: []byte("re")}}})
			ok2(err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent shares: %v", err)
	}
	for _, u := range []*user{alice, bob, carol} {
		latest := latestSeq(t, s, u.ID)
		cs := changes(t, s, u.ID, 0, 1000)
		if coffer.Seq(len(cs)) != latest {
			t.Fatalf("%s: %d feed entries, latest seq %d", u.Username, len(cs), latest)
		}
		for i, c := range cs {
			if c.Seq != coffer.Seq(i+1) {
				t.Fatalf("%s: feed entry %d has seq %d", u.Username, i, c.Seq)
			}
		}
	}
	if m, _ := ss.Membership(ctx, st.Tree, bob.ID); m.Status != metastore.MemberAccepted {
		t.Fatalf("bob after concurrent re-keys: %s", m.Status)
	}
}
