package metastoretest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

func equalAccount(a, b metastore.Account) error {
	ca, cb := a.Credentials, b.Credentials
	switch {
	case a.ID != b.ID, a.Username != b.Username, a.Tree != b.Tree, a.Quota != b.Quota:
		return fmt.Errorf("id/username/tree/quota differ: %s %q %s %d vs %s %q %s %d",
			a.ID, a.Username, a.Tree, a.Quota, b.ID, b.Username, b.Tree, b.Quota)
	case !a.Created.Equal(b.Created):
		return fmt.Errorf("created %v vs %v", a.Created, b.Created)
	case !bytes.Equal(ca.KDF, cb.KDF), !bytes.Equal(ca.LoginKey, cb.LoginKey), !bytes.Equal(ca.MasterKey, cb.MasterKey),
		!bytes.Equal(ca.RecoveryLoginKey, cb.RecoveryLoginKey), !bytes.Equal(ca.RecoveryMasterKey, cb.RecoveryMasterKey):
		return fmt.Errorf("credentials differ")
	case !bytes.Equal(a.Bundle, b.Bundle), a.BundleGeneration != b.BundleGeneration, !bytes.Equal(a.PublicKeys, b.PublicKeys):
		return fmt.Errorf("bundle differs (generation %d vs %d)", a.BundleGeneration, b.BundleGeneration)
	}
	return nil
}

func checkAccount(t *testing.T, s metastore.Store, want metastore.Account) {
	t.Helper()
	got, err := s.Account(t.Context(), want.ID)
	must(t, "Account", err)
	if err := equalAccount(got, want); err != nil {
		t.Fatalf("Account(%s): %v", want.ID, err)
	}
	got, err = s.AccountByName(t.Context(), want.Username)
	must(t, "AccountByName", err)
	if err := equalAccount(got, want); err != nil {
		t.Fatalf("AccountByName(%q): %v", want.Username, err)
	}
}

func testAccountCreateAndGet(t *testing.T, s metastore.Store) {
	a := account("alice")
	a.Quota = 1 << 30
	a.BundleGeneration = 7
	u := &user{Account: a, Root: newNode()}
	root := folder(u.Root, coffer.NodeID{}, 1)
	first := u.commit(root)
	first.Folders = []metastore.FolderSummary{{Folder: coffer.NodeID{}, Count: 1, Root: sha256.Sum256([]byte("r"))}}
	first.Buckets = map[uint8][32]byte{0: sha256.Sum256([]byte("b"))}
	seq, err := s.CreateAccount(t.Context(), a, "", first)
	must(t, "CreateAccount", err)
	if seq != 1 {
		t.Fatalf("CreateAccount seq = %d, want 1", seq)
	}
	checkAccount(t, s, a)
	checkHead(t, s, u, 1, first.Head)
	checkNode(t, s, a.Tree, root.Node)
	checkChildren(t, s, a.Tree, coffer.NodeID{}, root.Node)
	if got := latestSeq(t, s, a.ID); got != 1 {
		t.Fatalf("LatestSeq = %d, want 1", got)
	}
	ch := changes(t, s, a.ID, 0, 10)
	if len(ch) != 1 || ch[0].Seq != 1 || ch[0].Tree != a.Tree || ch[0].Version != 1 ||
		!bytes.Equal(ch[0].Head, first.Head) || !bytes.Equal(ch[0].Ops, first.Ops) {
		t.Fatalf("Changes after CreateAccount = %+v", ch)
	}
	bk, err := s.Buckets(t.Context(), a.Tree)
	must(t, "Buckets", err)
	if bk[0] != first.Buckets[0] || bk[1] != ([32]byte{}) {
		t.Fatal("Buckets after CreateAccount: bucket 0 not stored or bucket 1 not zero")
	}
	b0, err := s.Bucket(t.Context(), a.Tree, 0)
	must(t, "Bucket", err)
	if len(b0) != 1 || b0[0] != first.Folders[0] {
		t.Fatalf("Bucket(0) = %+v, want %+v", b0, first.Folders)
	}
}

func testAccountDuplicates(t *testing.T, s metastore.Store) {
	alice := newUser(t, s, "alice")

	// Same username, new ID and tree.
	dup := &user{Account: account("alice"), Root: newNode()}
	_, err := s.CreateAccount(t.Context(), dup.Account, "", dup.commit(folder(dup.Root, coffer.NodeID{}, 1)))
	wantErr(t, "CreateAccount with a taken username", err, coffer.ErrExist)
	_, err = s.Head(t.Context(), dup.Tree)
	wantErr(t, "Head of the refused account's tree", err, coffer.ErrNotFound)
	_, err = s.Account(t.Context(), dup.ID)
	wantErr(t, "Account of the refused account", err, coffer.ErrNotFound)

	// Same ID, new name and tree.
	dup2 := &user{Account: account("alice2"), Root: newNode()}
	dup2.ID = alice.ID
	_, err = s.CreateAccount(t.Context(), dup2.Account, "", dup2.commit(folder(dup2.Root, coffer.NodeID{}, 1)))
	wantErr(t, "CreateAccount with a taken id", err, coffer.ErrExist)
	_, err = s.AccountByName(t.Context(), "alice2")
	wantErr(t, "AccountByName of the refused account", err, coffer.ErrNotFound)
	_, err = s.Head(t.Context(), dup2.Tree)
	wantErr(t, "Head of the refused account's tree", err, coffer.ErrNotFound)

	checkAccount(t, s, alice.Account)
	checkHead(t, s, alice, 1, mustHead(t, s, alice.Tree))
	if got := latestSeq(t, s, alice.ID); got != 1 {
		t.Fatalf("LatestSeq of alice after refused duplicates = %d, want 1", got)
	}
}

func mustHead(t *testing.T, s metastore.Store, tree coffer.TreeID) []byte {
	t.Helper()
	h, err := s.Head(t.Context(), tree)
	must(t, "Head", err)
	return h.Head
}

func testAccountNotFound(t *testing.T, s metastore.Store) {
	_, err := s.Account(t.Context(), coffer.NewAccountID())
	wantErr(t, "Account(unknown)", err, coffer.ErrNotFound)
	_, err = s.AccountByName(t.Context(), "nobody")
	wantErr(t, "AccountByName(unknown)", err, coffer.ErrNotFound)
	_, err = s.Head(t.Context(), coffer.NewTreeID())
	wantErr(t, "Head(unknown tree)", err, coffer.ErrNotFound)
	_, err = s.Buckets(t.Context(), coffer.NewTreeID())
	wantErr(t, "Buckets(unknown tree)", err, coffer.ErrNotFound)
	if got := latestSeq(t, s, coffer.NewAccountID()); got != 0 {
		t.Fatalf("LatestSeq(unknown) = %d, want 0", got)
	}
	if got := changes(t, s, coffer.NewAccountID(), 0, 10); len(got) != 0 {
		t.Fatalf("Changes(unknown) has %d entries", len(got))
	}
}

// createWithInvite creates a fresh account using invite and reports the error.
func createWithInvite(t *testing.T, s metastore.Store, name, invite string) (*user, error) {
	t.Helper()
	u := &user{Account: account(name), Root: newNode()}
	_, err := s.CreateAccount(t.Context(), u.Account, invite, u.commit(folder(u.Root, coffer.NodeID{}, 1)))
	return u, err
}

// checkNoAccount checks that u was not stored, nor its tree.
func checkNoAccount(t *testing.T, s metastore.Store, u *user) {
	t.Helper()
	_, err := s.Account(t.Context(), u.ID)
	wantErr(t, "Account of a refused sign-up", err, coffer.ErrNotFound)
	_, err = s.AccountByName(t.Context(), u.Username)
	wantErr(t, "AccountByName of a refused sign-up", err, coffer.ErrNotFound)
	_, err = s.Head(t.Context(), u.Tree)
	wantErr(t, "Head of a refused sign-up's tree", err, coffer.ErrNotFound)
	if got := latestSeq(t, s, u.ID); got != 0 {
		t.Fatalf("LatestSeq of a refused sign-up = %d, want 0", got)
	}
}

func testInvites(t *testing.T, s metastore.Store) {
	must(t, "CreateInvite", s.CreateInvite(t.Context(), "invite-1", at(0)))
	wantErr(t, "CreateInvite twice", s.CreateInvite(t.Context(), "invite-1", at(time.Second)), coffer.ErrExist)

	u, err := createWithInvite(t, s, "nobody", "no-such-invite")
	wantErr(t, "CreateAccount with an unknown invite", err, coffer.ErrNotFound)
	checkNoAccount(t, s, u)

	u1, err := createWithInvite(t, s, "first", "invite-1")
	must(t, "CreateAccount with invite", err)
	checkAccount(t, s, u1.Account)

	u2, err := createWithInvite(t, s, "second", "invite-1")
	wantErr(t, "CreateAccount with a used invite", err, coffer.ErrNotFound)
	checkNoAccount(t, s, u2)

	wantErr(t, "CreateInvite of a used code", s.CreateInvite(t.Context(), "invite-1", at(0)), coffer.ErrExist)
}

func testAccountFirstCommitAtomic(t *testing.T, s metastore.Store) {
	must(t, "CreateInvite", s.CreateInvite(t.Context(), "inv", at(0)))
	// The first commit references a blob that does not exist: nothing is stored and the invite
	// is not consumed.
	u := &user{Account: account("carol"), Root: newNode()}
	rootFile := newNode()
	first := u.commit(folder(u.Root, coffer.NodeID{}, 1), file(rootFile, u.Root, 1, sha256.Sum256([]byte("no blob"))))
	_, err := s.CreateAccount(t.Context(), u.Account, "inv", first)
	wantErr(t, "CreateAccount whose first commit references a missing blob", err, coffer.ErrNotFound)
	checkNoAccount(t, s, u)
	checkAbsent(t, s, u.Tree, u.Root)

	// The same account and invite then work.
	first = u.commit(folder(u.Root, coffer.NodeID{}, 1))
	_, err = s.CreateAccount(t.Context(), u.Account, "inv", first)
	must(t, "CreateAccount after the failed attempt", err)
	checkAccount(t, s, u.Account)
}

func testCredentials(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "dave")
	c := metastore.Credentials{KDF: []byte("new kdf"), LoginKey: rnd(32), MasterKey: rnd(60),
		RecoveryLoginKey: rnd(32), RecoveryMasterKey: rnd(60)}
	must(t, "SetCredentials", s.SetCredentials(t.Context(), u.ID, c))
	u.Credentials = c
	checkAccount(t, s, u.Account)
	wantErr(t, "SetCredentials(unknown)", s.SetCredentials(t.Context(), coffer.NewAccountID(), c), coffer.ErrNotFound)
}

func testBundleCAS(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "erin") // generation 1
	b2, pk2 := rnd(100), rnd(64)
	wantErr(t, "SetBundle from a wrong generation", s.SetBundle(t.Context(), u.ID, 5, 6, b2, pk2), coffer.ErrConflict)
	checkAccount(t, s, u.Account)

	must(t, "SetBundle 1→2", s.SetBundle(t.Context(), u.ID, 1, 2, b2, pk2))
	u.Bundle, u.PublicKeys, u.BundleGeneration = b2, pk2, 2
	checkAccount(t, s, u.Account)

	wantErr(t, "SetBundle 1→3 after 1→2", s.SetBundle(t.Context(), u.ID, 1, 3, rnd(10), rnd(10)), coffer.ErrConflict)
	checkAccount(t, s, u.Account)

	if err := s.SetBundle(t.Context(), u.ID, 2, 2, rnd(10), rnd(10)); err == nil {
		t.Fatal("SetBundle with newGen == oldGen succeeded")
	}
	if err := s.SetBundle(t.Context(), coffer.NewAccountID(), 1, 2, rnd(10), rnd(10)); err == nil {
		t.Fatal("SetBundle of an unknown account succeeded")
	}
	checkAccount(t, s, u.Account)
}

func testLoginFailures(t *testing.T, s metastore.Store) {
	n, last, err := s.LoginFailures(t.Context(), "user:alice")
	if err != nil || n != 0 || !last.IsZero() {
		t.Fatalf("LoginFailures(unknown) = %d, %v, %v; want 0, zero, nil", n, last, err)
	}
	must(t, "SetLoginFailures", s.SetLoginFailures(t.Context(), "user:alice", 3, at(time.Minute)))
	must(t, "SetLoginFailures", s.SetLoginFailures(t.Context(), "ip:192.0.2.1", 1, at(time.Hour)))
	n, last, err = s.LoginFailures(t.Context(), "user:alice")
	if err != nil || n != 3 || !last.Equal(at(time.Minute)) {
		t.Fatalf("LoginFailures = %d, %v, %v; want 3, %v", n, last, err, at(time.Minute))
	}
	must(t, "SetLoginFailures", s.SetLoginFailures(t.Context(), "user:alice", 4, at(2*time.Minute)))
	n, last, _ = s.LoginFailures(t.Context(), "user:alice")
	if n != 4 || !last.Equal(at(2*time.Minute)) {
		t.Fatalf("LoginFailures after update = %d, %v", n, last)
	}
	must(t, "SetLoginFailures(0)", s.SetLoginFailures(t.Context(), "user:alice", 0, time.Time{}))
	n, last, err = s.LoginFailures(t.Context(), "user:alice")
	if err != nil || n != 0 || !last.IsZero() {
		t.Fatalf("LoginFailures after clearing = %d, %v, %v", n, last, err)
	}
	if n, _, _ := s.LoginFailures(t.Context(), "ip:192.0.2.1"); n != 1 {
		t.Fatalf("clearing one key changed another: %d", n)
	}
}

func session(acct coffer.AccountID, id string, created time.Duration) metastore.Session {
	return metastore.Session{
		ID: id, Account: acct, TokenHash: sha256.Sum256([]byte("token " + id)), Device: "device " + id,
		Created: at(created), LastUsed: at(created), Expires: at(created + 30*24*time.Hour),
	}
}

func equalSession(a, b metastore.Session) bool {
	return a.ID == b.ID && a.Account == b.Account && a.TokenHash == b.TokenHash && a.Device == b.Device &&
		a.Created.Equal(b.Created) && a.LastUsed.Equal(b.LastUsed) && a.Expires.Equal(b.Expires)
}

func checkSessions(t *testing.T, s metastore.Store, acct coffer.AccountID, want ...metastore.Session) {
	t.Helper()
	got, err := s.ListSessions(t.Context(), acct)
	must(t, "ListSessions", err)
	if len(got) != len(want) {
		t.Fatalf("ListSessions has %d sessions, want %d", len(got), len(want))
	}
	for i := range got {
		if !equalSession(got[i], want[i]) {
			t.Fatalf("ListSessions[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func testSessions(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	a1, a2, a3 := session(alice.ID, "a1", 0), session(alice.ID, "a2", time.Hour), session(alice.ID, "a3", 2*time.Hour)
	b1 := session(bob.ID, "b1", 30*time.Minute)
	for _, se := range []metastore.Session{a2, a1, b1, a3} {
		must(t, "CreateSession", s.CreateSession(t.Context(), se))
	}
	got, err := s.SessionByToken(t.Context(), a2.TokenHash)
	must(t, "SessionByToken", err)
	if !equalSession(got, a2) {
		t.Fatalf("SessionByToken = %+v, want %+v", got, a2)
	}
	_, err = s.SessionByToken(t.Context(), sha256.Sum256([]byte("unknown token")))
	wantErr(t, "SessionByToken(unknown)", err, coffer.ErrNotFound)
	checkSessions(t, s, alice.ID, a3, a2, a1) // newest first
	checkSessions(t, s, bob.ID, b1)

	// Touch.
	must(t, "TouchSession", s.TouchSession(t.Context(), "a1", at(5*time.Hour), at(40*24*time.Hour)))
	a1.LastUsed, a1.Expires = at(5*time.Hour), at(40*24*time.Hour)
	got, err = s.SessionByToken(t.Context(), a1.TokenHash)
	must(t, "SessionByToken after touch", err)
	if !equalSession(got, a1) {
		t.Fatalf("after TouchSession: %+v, want %+v", got, a1)
	}
	if err := s.TouchSession(t.Context(), "nope", at(0), at(0)); err == nil {
		t.Fatal("TouchSession of an unknown session succeeded")
	}

	// Another account's session cannot be deleted.
	wantErr(t, "DeleteSession of bob's session as alice", s.DeleteSession(t.Context(), alice.ID, "b1"), coffer.ErrNotFound)
	checkSessions(t, s, bob.ID, b1)
	wantErr(t, "DeleteSession(unknown)", s.DeleteSession(t.Context(), alice.ID, "zz"), coffer.ErrNotFound)

	must(t, "DeleteSession", s.DeleteSession(t.Context(), alice.ID, "a2"))
	checkSessions(t, s, alice.ID, a3, a1)
	_, err = s.SessionByToken(t.Context(), a2.TokenHash)
	wantErr(t, "SessionByToken of a deleted session", err, coffer.ErrNotFound)

	// Delete all but one, then all; bob keeps his.
	a4 := session(alice.ID, "a4", 3*time.Hour)
	must(t, "CreateSession", s.CreateSession(t.Context(), a4))
	must(t, "DeleteSessions(keep a3)", s.DeleteSessions(t.Context(), alice.ID, "a3"))
	checkSessions(t, s, alice.ID, a3)
	must(t, "DeleteSessions(keep b1) as alice", s.DeleteSessions(t.Context(), alice.ID, "b1"))
	checkSessions(t, s, alice.ID)
	checkSessions(t, s, bob.ID, b1)
	must(t, "DeleteSessions(keep none)", s.DeleteSessions(t.Context(), bob.ID, ""))
	checkSessions(t, s, bob.ID)
}

func testSessionDuplicates(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "frank")
	se := session(u.ID, "s1", 0)
	must(t, "CreateSession", s.CreateSession(t.Context(), se))
	dupID := session(u.ID, "s1", time.Hour)
	wantErr(t, "CreateSession with a used id", s.CreateSession(t.Context(), dupID), coffer.ErrExist)
	dupToken := session(u.ID, "s2", time.Hour)
	dupToken.TokenHash = se.TokenHash
	wantErr(t, "CreateSession with a used token hash", s.CreateSession(t.Context(), dupToken), coffer.ErrExist)
	checkSessions(t, s, u.ID, se)
}
