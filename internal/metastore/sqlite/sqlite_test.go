package sqlite

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
	"coffer/internal/metastore/metastoretest"
)

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	metastoretest.Run(t, func(t *testing.T) metastore.Store {
		s := open(t, filepath.Join(t.TempDir(), "meta.db"))
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}

func TestOpenBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b", "file:x.db", ":memory:"} {
		if _, err := Open(t.Context(), p, nil); !errors.Is(err, coffer.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", p, err)
		}
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), nil); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestPragmas(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "meta.db"))
	defer s.Close()
	for _, db := range []struct {
		name        string
		q           func(string) (string, error)
		mmap, cache string
	}{
		{"writer", func(p string) (v string, err error) { err = s.w.QueryRow("PRAGMA " + p).Scan(&v); return },
			fmt.Sprint(mmapSize), fmt.Sprint(-cacheKiB)},
		{"reader", func(p string) (v string, err error) { err = s.r.QueryRow("PRAGMA " + p).Scan(&v); return },
			"0", fmt.Sprint(-readerCacheKiB)},
	} {
		for p, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1",
			"busy_timeout": fmt.Sprint(busyTimeoutMS), "mmap_size": db.mmap, "cache_size": db.cache} {
			got, err := db.q(p)
			if err != nil || got != want {
				t.Errorf("%s: PRAGMA %s = %q, %v; want %q", db.name, p, got, err, want)
			}
		}
	}
	if _, err := s.r.Exec(`DELETE FROM accounts`); err == nil {
		t.Error("the read pool accepted a write")
	}
}

// TestReopenKeepsEverything writes through one store, closes it, and reads it all back.
func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := t.Context()
	s := open(t, path)
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "alice", Created: time.Unix(1700000000, 123456789),
		Credentials: metastore.Credentials{KDF: []byte("kdf"), LoginKey: []byte("lk")}, Bundle: []byte("bundle"),
		BundleGeneration: 1, Tree: coffer.NewTreeID(), Quota: 5000}
	root := metastore.Node{Node: coffer.NewNodeID(), Kind: 1, Version: 1, Hash: sha256.Sum256([]byte("r")), Record: []byte("root")}
	first := metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h1"), Ops: []byte("o1"),
		Records: []metastore.CommitRecord{{Node: root}}, Buckets: map[uint8][32]byte{9: {9}},
		Folders: []metastore.FolderSummary{{Folder: coffer.NodeID{}, Count: 1, Root: [32]byte{1}}}}
	if _, err := s.CreateAccount(ctx, a, "", first); err != nil {
		t.Fatal(err)
	}
	blob := coffer.BlobID(sha256.Sum256([]byte("blob")))
	if err := s.AddBlob(ctx, metastore.BlobInfo{ID: blob, Owner: a.ID, Size: 42, Created: time.Unix(1700000001, 0)}); err != nil {
		t.Fatal(err)
	}
	f1 := metastore.Node{Node: coffer.NewNodeID(), Parent: root.Node, Kind: kindFile, Version: 1, Hash: [32]byte{2}, Record: []byte("f v1")}
	f2 := f1
	f2.Version, f2.Record = 2, []byte("f v2")
	for i, n := range []metastore.Node{f1, f2} {
		c := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: uint64(i + 1), Version: uint64(i + 2),
			Head: fmt.Appendf(nil, "h%d", i+2), Ops: []byte("o"), KeepVersions: 5,
			Records: []metastore.CommitRecord{{Node: n, Blobs: []coffer.BlobID{blob}}}}
		if _, err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	se := metastore.Session{ID: "s", Account: a.ID, TokenHash: [32]byte{7}, Device: "d", Created: time.Unix(5, 0)}
	if err := s.CreateSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateInvite(ctx, "inv", time.Unix(6, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLoginFailures(ctx, "k", 2, time.Unix(7, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	got, err := s.Account(ctx, a.ID)
	if err != nil || got.Username != "alice" || !got.Created.Equal(a.Created) || got.Quota != 5000 ||
		!bytes.Equal(got.Bundle, a.Bundle) || !bytes.Equal(got.Credentials.LoginKey, []byte("lk")) {
		t.Fatalf("account after reopen: %+v, %v", got, err)
	}
	h, err := s.Head(ctx, a.Tree)
	if err != nil || h.Version != 3 || string(h.Head) != "h3" {
		t.Fatalf("head after reopen: %+v, %v", h, err)
	}
	n, err := s.Node(ctx, a.Tree, f1.Node)
	if err != nil || n.Version != 2 || string(n.Record) != "f v2" {
		t.Fatalf("node after reopen: %+v, %v", n, err)
	}
	v, err := s.Versions(ctx, a.Tree, f1.Node)
	if err != nil || len(v) != 1 || string(v[0]) != "f v1" {
		t.Fatalf("versions after reopen: %q, %v", v, err)
	}
	bk, err := s.Buckets(ctx, a.Tree)
	if err != nil || bk[9] != ([32]byte{9}) {
		t.Fatalf("buckets after reopen: %v", err)
	}
	if fs, err := s.Bucket(ctx, a.Tree, 0); err != nil || len(fs) != 1 || fs[0].Count != 1 {
		t.Fatalf("bucket after reopen: %+v, %v", fs, err)
	}
	if seq, err := s.LatestSeq(ctx, a.ID); err != nil || seq != 3 {
		t.Fatalf("seq after reopen: %d, %v", seq, err)
	}
	if ch, err := s.Changes(ctx, a.ID, 0, 10); err != nil || len(ch) != 3 {
		t.Fatalf("changes after reopen: %d, %v", len(ch), err)
	}
	if b, c, err := s.Usage(ctx, a.ID); err != nil || b != 42 || c != 1 {
		t.Fatalf("usage after reopen: %d %d %v", b, c, err)
	}
	if got, err := s.SessionByToken(ctx, se.TokenHash); err != nil || got.ID != "s" {
		t.Fatalf("session after reopen: %+v, %v", got, err)
	}
	if err := s.CreateInvite(ctx, "inv", time.Unix(6, 0)); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("invite after reopen: CreateInvite again = %v", err)
	}
	if n, _, err := s.LoginFailures(ctx, "k"); err != nil || n != 2 {
		t.Fatalf("login failures after reopen: %d, %v", n, err)
	}
	if refs := collectIDs(t, s); len(refs) != 0 {
		t.Fatalf("a referenced blob became collectable after reopen: %v", refs)
	}
}

func collectIDs(t *testing.T, s *Store) []coffer.BlobID {
	t.Helper()
	bs, err := s.CollectableBlobs(t.Context(), time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []coffer.BlobID
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := open(t, path)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.schemaVersion(t.Context()); err != nil || v != len(ms) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(ms))
	}
	// Running the migrations again on the open store and opening the file again change nothing.
	if err := s.migrate(t.Context()); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	s.Close()
	s = open(t, path)
	var rows int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM schema_version`).Scan(&rows); err != nil || rows != len(ms) {
		t.Fatalf("schema_version has %d rows, %v; want %d", rows, err, len(ms))
	}
	// A database from a newer program is refused.
	if _, err := s.w.Exec(`INSERT INTO schema_version (version, applied) VALUES (?, 0)`, len(ms)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(t.Context(), path, nil); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("Open of a newer schema = %v, want ErrInvalid", err)
	}
}

func TestCommitValidation(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "meta.db"))
	defer s.Close()
	c := metastore.Commit{Tree: coffer.NewTreeID(), Owner: coffer.NewAccountID(), BaseVersion: 1, Version: 3}
	if _, err := s.Commit(t.Context(), c); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("Commit with Version != BaseVersion+1 = %v, want ErrInvalid", err)
	}
	c.BaseVersion, c.Version = 0, 1
	if _, err := s.Commit(t.Context(), c); !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("first Commit for an unknown owner = %v, want ErrNotFound", err)
	}
	if _, err := s.Changes(t.Context(), c.Owner, 0, 0); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("Changes with limit 0 = %v, want ErrInvalid", err)
	}
	if _, err := s.CollectableBlobs(t.Context(), time.Now(), 0); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("CollectableBlobs with limit 0 = %v, want ErrInvalid", err)
	}
}

func TestAllTrees(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "meta.db"))
	defer s.Close()
	want := map[coffer.TreeID]bool{}
	for i := range 3 {
		a := metastore.Account{ID: coffer.NewAccountID(), Username: fmt.Sprint("u", i), Tree: coffer.NewTreeID()}
		first := metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h")}
		if _, err := s.CreateAccount(t.Context(), a, "", first); err != nil {
			t.Fatal(err)
		}
		want[a.Tree] = true
	}
	var prev *coffer.TreeID
	n := 0
	for id, err := range s.AllTrees(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		if !want[id] || prev != nil && bytes.Compare(prev[:], id[:]) >= 0 {
			t.Fatalf("AllTrees yielded %s: unknown or out of order", id)
		}
		p := id
		prev = &p
		n++
	}
	if n != len(want) {
		t.Fatalf("AllTrees yielded %d trees, want %d", n, len(want))
	}
}
