package metastoretest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// moreTests are run by Run after its own list: AllTrees and the races a store with several
// writers (PostgreSQL, several server nodes) must settle exactly as a single-writer store does.
var moreTests = []struct {
	name string
	fn   func(t *testing.T, s metastore.Store)
}{
	{"AllTrees", testAllTrees},
	{"ConcurrentSignupsSameName", testConcurrentSignups},
	{"ConcurrentSignupsOneInvite", testConcurrentInvite},
	{"ConcurrentAddBlobQuota", testConcurrentQuota},
	{"ConcurrentAddSameBlob", testConcurrentSameBlob},
	{"ConcurrentCollections", testConcurrentCollect},
	{"ConcurrentCommitsTwoTrees", testConcurrentTwoTrees},
}

// race runs fn(i) for i in [0, n) at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// tally counts nil errors and errors wrapping target; it fails the test on any other error.
func tally(t *testing.T, what string, errs []error, target error) (ok, refused int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, target):
			refused++
		default:
			t.Fatalf("%s: unexpected error %v (want nil or %v)", what, err, target)
		}
	}
	return ok, refused
}

func testAllTrees(t *testing.T, s metastore.Store) {
	var want []coffer.TreeID
	for i := range 3 {
		u := newUser(t, s, fmt.Sprint("user", i))
		want = append(want, u.Tree)
		if i == 1 { // a second tree of the same owner
			second := &user{Account: u.Account, Root: newNode()}
			second.Tree = coffer.NewTreeID()
			second.apply(t, s, second.commit(folder(second.Root, coffer.NodeID{}, 1)))
			want = append(want, second.Tree)
		}
	}
	slices.SortFunc(want, func(a, b coffer.TreeID) int { return bytes.Compare(a[:], b[:]) })
	var got []coffer.TreeID
	for id, err := range s.AllTrees(t.Context()) {
		must(t, "AllTrees", err)
		got = append(got, id)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("AllTrees = %v, want %v (every tree once, ascending)", got, want)
	}
	for range 50 { // stopping early releases the iteration
		for _, err := range s.AllTrees(t.Context()) {
			must(t, "AllTrees", err)
			break
		}
	}
	newUser(t, s, "after")
}

func testConcurrentSignups(t *testing.T, s metastore.Store) {
	const n = 8
	users := make([]*user, n)
	for i := range users {
		users[i] = &user{Account: account("same-name"), Root: newNode()}
	}
	errs := race(n, func(i int) error {
		u := users[i]
		_, err := s.CreateAccount(t.Context(), u.Account, "", u.commit(folder(u.Root, coffer.NodeID{}, 1)))
		return err
	})
	if ok, _ := tally(t, "concurrent CreateAccount with one username", errs, coffer.ErrExist); ok != 1 {
		t.Fatalf("%d of %d sign-ups with one username succeeded, want 1", ok, n)
	}
	for i, u := range users {
		if errs[i] == nil {
			checkAccount(t, s, u.Account)
			continue
		}
		_, err := s.Account(t.Context(), u.ID)
		wantErr(t, "Account of a refused sign-up", err, coffer.ErrNotFound)
		_, err = s.Head(t.Context(), u.Tree)
		wantErr(t, "Head of a refused sign-up's tree", err, coffer.ErrNotFound)
	}
}

func testConcurrentInvite(t *testing.T, s metastore.Store) {
	must(t, "CreateInvite", s.CreateInvite(t.Context(), "only-one", at(0)))
	const n = 6
	users := make([]*user, n)
	for i := range users {
		users[i] = &user{Account: account(fmt.Sprint("invitee", i)), Root: newNode()}
	}
	errs := race(n, func(i int) error {
		u := users[i]
		_, err := s.CreateAccount(t.Context(), u.Account, "only-one", u.commit(folder(u.Root, coffer.NodeID{}, 1)))
		return err
	})
	if ok, _ := tally(t, "concurrent CreateAccount with one invite", errs, coffer.ErrNotFound); ok != 1 {
		t.Fatalf("%d of %d sign-ups with one invite succeeded, want 1", ok, n)
	}
	for i, u := range users {
		if errs[i] != nil {
			checkNoAccount(t, s, u)
		}
	}
}

func testConcurrentQuota(t *testing.T, s metastore.Store) {
	a := account("quota")
	a.Quota = 1000
	u := &user{Account: a, Root: newNode()}
	_, err := s.CreateAccount(t.Context(), a, "", u.commit(folder(u.Root, coffer.NodeID{}, 1)))
	must(t, "CreateAccount", err)
	const n = 10
	errs := race(n, func(i int) error {
		id := coffer.BlobID(sha256.Sum256(fmt.Appendf(nil, "blob %d", i)))
		return s.AddBlob(t.Context(), metastore.BlobInfo{ID: id, Owner: u.ID, Size: 150, Created: at(0)})
	})
	ok, _ := tally(t, "concurrent AddBlob near quota", errs, coffer.ErrQuota)
	if ok != 6 {
		t.Fatalf("%d of %d blobs of 150 bytes fit a 1000-byte quota, want 6", ok, n)
	}
	checkUsage(t, s, u.ID, 900, 6)
}

func testConcurrentSameBlob(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	// One owner uploading the same blob several times at once: counted once.
	id := coffer.BlobID(sha256.Sum256([]byte("same")))
	errs := race(6, func(i int) error {
		return s.AddBlob(t.Context(), metastore.BlobInfo{ID: id, Owner: alice.ID, Size: 10, Created: at(time.Duration(i) * time.Second)})
	})
	if ok, _ := tally(t, "concurrent AddBlob of one blob by one owner", errs, coffer.ErrExist); ok != 6 {
		t.Fatalf("%d of 6 re-adds succeeded, want all", ok)
	}
	checkUsage(t, s, alice.ID, 10, 1)
	if b, err := s.Blob(t.Context(), id); err != nil || !b.Created.Equal(at(5*time.Second)) {
		t.Fatalf("Blob after concurrent re-adds: %+v, %v; want the latest Created", b, err)
	}
	// Two owners racing for one blob: exactly one gets it.
	id2 := coffer.BlobID(sha256.Sum256([]byte("contested")))
	owners := []*user{alice, bob, alice, bob}
	errs = race(len(owners), func(i int) error {
		return s.AddBlob(t.Context(), metastore.BlobInfo{ID: id2, Owner: owners[i].ID, Size: 5, Created: at(0)})
	})
	tally(t, "concurrent AddBlob of one blob by two owners", errs, coffer.ErrExist)
	b, err := s.Blob(t.Context(), id2)
	must(t, "Blob", err)
	for i, err := range errs {
		if (err == nil) != (owners[i].ID == b.Owner) {
			t.Fatalf("AddBlob %d by %s: %v, but the blob is %s's", i, owners[i].ID, err, b.Owner)
		}
	}
	ua, _, _ := s.Usage(t.Context(), alice.ID)
	ub, _, _ := s.Usage(t.Context(), bob.ID)
	if ua+ub != 10+5 {
		t.Fatalf("usage alice %d + bob %d, want 15 (the contested blob counted once)", ua, ub)
	}
}

func testConcurrentCollect(t *testing.T, s metastore.Store) {
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	const n = 30
	all := map[coffer.BlobID]bool{}
	for i := range n {
		u := alice
		if i%3 == 0 {
			u = bob
		}
		all[addBlob(t, s, u, 1, at(0))] = true
	}
	var mu sync.Mutex
	seen := map[coffer.BlobID]int{}
	errs := race(4, func(int) error {
		for {
			bs, err := s.CollectableBlobs(t.Context(), at(time.Hour), 3)
			if err != nil {
				return err
			}
			if len(bs) == 0 {
				return nil
			}
			mu.Lock()
			for _, b := range bs {
				seen[b.ID]++
			}
			mu.Unlock()
		}
	})
	tally(t, "concurrent CollectableBlobs", errs, errors.New("none"))
	// A collector may stop while another still holds candidates: finish, then count.
	for _, id := range collect(t, s, at(time.Hour), n) {
		seen[id]++
	}
	if len(seen) != n {
		t.Fatalf("collections returned %d distinct blobs, want %d", len(seen), n)
	}
	for id, k := range seen {
		if !all[id] || k != 1 {
			t.Fatalf("blob %s returned %d times (known: %v), want once", id, k, all[id])
		}
	}
	checkUsage(t, s, alice.ID, 0, 0)
	checkUsage(t, s, bob.ID, 0, 0)
}

// testConcurrentTwoTrees commits to two trees of one owner at once, both referencing the same
// blobs: every commit succeeds and the owner's feed stays gapless.
func testConcurrentTwoTrees(t *testing.T, s metastore.Store) {
	u := newUser(t, s, "alice")
	second := &user{Account: u.Account, Root: newNode()}
	second.Tree = coffer.NewTreeID()
	second.apply(t, s, second.commit(folder(second.Root, coffer.NodeID{}, 1)))
	shared := []coffer.BlobID{addBlob(t, s, u, 1, at(0)), addBlob(t, s, u, 1, at(0))}
	const each = 10
	trees := []*user{u, second}
	errs := race(2, func(i int) error {
		w := trees[i]
		for k := range each {
			b := []coffer.BlobID{shared[k%2], shared[(k+1)%2]}
			if i == 1 {
				slices.Reverse(b)
			}
			c := w.commit(file(newNode(), w.Root, 1, b...))
			if _, err := s.Commit(t.Context(), c); err != nil {
				return err
			}
			w.Version = c.Version
		}
		return nil
	})
	tally(t, "concurrent commits on two trees", errs, errors.New("none"))
	feed := changes(t, s, u.ID, 0, 100)
	if len(feed) != 2+2*each {
		t.Fatalf("feed has %d entries, want %d", len(feed), 2+2*each)
	}
	for i, e := range feed {
		if e.Seq != coffer.Seq(i+1) {
			t.Fatalf("feed entry %d has seq %d: not gapless", i, e.Seq)
		}
	}
	if got := collect(t, s, at(time.Hour), 10); len(got) != 0 {
		t.Fatalf("collected %d referenced blobs", len(got))
	}
}
