package sqlite

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// groupAccount creates an account (quota bytes; 0 = none) with a root folder.
func groupAccount(t *testing.T, s *Store, name string, quota int64) (metastore.Account, coffer.NodeID) {
	t.Helper()
	a := metastore.Account{ID: coffer.NewAccountID(), Username: name, Tree: coffer.NewTreeID(), Quota: quota}
	root := coffer.NewNodeID()
	first := metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h1"),
		Records: []metastore.CommitRecord{{Node: metastore.Node{Node: root, Kind: 1, Version: 1, Record: []byte("root")}}}}
	if _, err := s.CreateAccount(t.Context(), a, "", first); err != nil {
		t.Fatal(err)
	}
	return a, root
}

// TestGroupCommit queues writes behind a held write connection so that they run as ONE group
// transaction (commits through Commit and through Shares.CommitShared, which the server uses),
// some of them failing (a stale commit base, a quota overrun, an unknown owner):
// each failing write gets its own error and leaves nothing behind, every other write is applied,
// and all of it survives reopening the database.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := open(t, path)
	ctx := t.Context()
	alice, root := groupAccount(t, s, "alice", 0)
	bob, _ := groupAccount(t, s, "bob", 100) // quota: one 60-byte blob fits, not two

	type result struct {
		name string
		err  error
	}
	var wg sync.WaitGroup
	results := make(chan result, 16)
	queued := 0
	run := func(name string, fn func() error) {
		queued++
		wg.Add(1)
		go func() { defer wg.Done(); results <- result{name, fn()} }()
	}
	blob := func(i int) coffer.BlobID { return coffer.BlobID(sha256.Sum256(fmt.Appendf(nil, "blob %d", i))) }
	now := time.Unix(1700000000, 0)

	// Hold the write connection: everything below queues for one group.
	s.wsem <- struct{}{}
	run("alice blob", func() error {
		return s.AddBlob(ctx, metastore.BlobInfo{ID: blob(1), Owner: alice.ID, Size: 10, Created: now})
	})
	run("bob blob 1", func() error {
		return s.AddBlob(ctx, metastore.BlobInfo{ID: blob(2), Owner: bob.ID, Size: 60, Created: now})
	})
	waitGroupQueue(t, s, queued)
	run("bob blob 2 over quota", func() error {
		return s.AddBlob(ctx, metastore.BlobInfo{ID: blob(3), Owner: bob.ID, Size: 60, Created: now})
	})
	run("unknown owner", func() error {
		return s.AddBlob(ctx, metastore.BlobInfo{ID: blob(4), Owner: coffer.NewAccountID(), Size: 1, Created: now})
	})
	waitGroupQueue(t, s, queued)
	file := metastore.Node{Node: coffer.NewNodeID(), Parent: root, Kind: kindFile, Version: 1, Hash: [32]byte{7}, Record: []byte("f")}
	run("alice commit", func() error {
		_, err := s.Commit(ctx, metastore.Commit{Tree: alice.Tree, Owner: alice.ID, BaseVersion: 1, Version: 2,
			Head: []byte("h2"), Ops: []byte("o"), Records: []metastore.CommitRecord{{Node: file, Blobs: []coffer.BlobID{blob(1)}}}})
		return err
	})
	waitGroupQueue(t, s, queued)
	bobFolder := metastore.Node{Node: coffer.NewNodeID(), Parent: coffer.NodeID{}, Kind: 1, Version: 1, Record: []byte("d")}
	run("bob commit (through Shares)", func() error {
		ns, err := s.CommitShared(ctx, metastore.Commit{Tree: bob.Tree, Owner: bob.ID, BaseVersion: 1, Version: 2,
			Head: []byte("b2"), Ops: []byte("o"), Records: []metastore.CommitRecord{{Node: bobFolder}}})
		if err == nil && (len(ns) != 1 || ns[0].Account != bob.ID) {
			err = fmt.Errorf("notices %+v; want one for bob", ns)
		}
		return err
	})
	waitGroupQueue(t, s, queued)
	run("alice stale commit", func() error {
		_, err := s.CommitShared(ctx, metastore.Commit{Tree: alice.Tree, Owner: alice.ID, BaseVersion: 1, Version: 2,
			Head: []byte("h2'"), Ops: []byte("o"), Records: []metastore.CommitRecord{{Node: metastore.Node{
				Node: coffer.NewNodeID(), Parent: root, Kind: kindFile, Version: 1, Record: []byte("g")}}}})
		return err
	})
	// A waiter that gives up before its turn leaves the queue and writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() {
		gone <- s.AddBlob(cctx, metastore.BlobInfo{ID: blob(5), Owner: alice.ID, Size: 1, Created: now})
	}()
	waitGroupQueue(t, s, queued+1)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v; want context.Canceled", err)
	}
	waitGroupQueue(t, s, queued)
	groups := s.groups.Load()
	s.unlockWriter() // the first waiter leads all of them in one transaction
	wg.Wait()
	if n := s.groups.Load() - groups; n != 1 {
		t.Errorf("%d group transactions; want the %d queued writes in 1", n, queued)
	}
	close(results)

	want := map[string]error{
		"alice blob": nil, "bob blob 1": nil, "alice commit": nil,
		"bob blob 2 over quota": coffer.ErrQuota, "unknown owner": coffer.ErrNotFound,
		"alice stale commit": coffer.ErrConflict, "bob commit (through Shares)": nil,
	}
	for r := range results {
		if w := want[r.name]; (w == nil) != (r.err == nil) || (w != nil && !errors.Is(r.err, w)) {
			t.Errorf("%s: %v; want %v", r.name, r.err, w)
		}
	}
	check := func(s *Store) {
		t.Helper()
		for who, want := range map[coffer.AccountID]int64{alice.ID: 10, bob.ID: 60} {
			if used, _, err := s.Usage(ctx, who); err != nil || used != want {
				t.Errorf("usage: %d, %v; want %d", used, err, want)
			}
		}
		for _, i := range []int{3, 4, 5} {
			if _, err := s.Blob(ctx, blob(i)); !errors.Is(err, coffer.ErrNotFound) {
				t.Errorf("blob %d of a failed write: %v; want ErrNotFound", i, err)
			}
		}
		h, err := s.Head(ctx, alice.Tree)
		if err != nil || h.Version != 2 || string(h.Head) != "h2" {
			t.Errorf("alice's head: %d %q %v; want version 2, h2", h.Version, h.Head, err)
		}
		if _, err := s.Node(ctx, alice.Tree, file.Node); err != nil {
			t.Errorf("committed file: %v", err)
		}
		if _, err := s.Node(ctx, bob.Tree, bobFolder.Node); err != nil {
			t.Errorf("bob's committed folder: %v", err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path)
	check(s2)
}

// waitGroupQueue waits until n writes wait for a group transaction.
func waitGroupQueue(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.gmu.Lock()
		got := len(s.gqueue)
		s.gmu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued; want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}
