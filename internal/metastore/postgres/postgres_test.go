package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"coffer"
	"coffer/internal/metastore"
	"coffer/internal/metastore/metastoretest"
)

// baseDSN returns the test server's DSN from COFFER_TEST_POSTGRES. Without it the test is
// skipped, except in CI (CI=true), where PostgreSQL is required.
func baseDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("COFFER_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL required in CI: set COFFER_TEST_POSTGRES (source scripts/pg.sh starts a throwaway server)")
		}
		t.Skip("COFFER_TEST_POSTGRES is not set; skipping PostgreSQL tests (source scripts/pg.sh to run them)")
	}
	return dsn
}

// withDatabase returns dsn with its database name replaced by name.
func withDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("COFFER_TEST_POSTGRES is not a valid URL: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name // key=value form: the last setting wins
}

// admin runs one statement on the test server's default database.
func admin(base, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// template is a database with the schema applied, created once per test binary (by the first
// test that needs it) and cloned by freshDB, which saves applying the migrations in every test.
var template struct {
	once sync.Once
	name string
	err  error
}

// TestMain drops the template database after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if template.name != "" {
		if err := admin(os.Getenv("COFFER_TEST_POSTGRES"), `DROP DATABASE IF EXISTS `+template.name+` WITH (FORCE)`); err != nil {
			fmt.Fprintf(os.Stderr, "drop template database %s: %v\n", template.name, err)
		}
	}
	os.Exit(code)
}

// freshDB creates a database with a random name on the test server, drops it when the test
// ends, and returns its DSN. With migrated, it is a copy of a database with the schema applied;
// without, it is empty.
func freshDB(t testing.TB, migrated bool) string {
	t.Helper()
	base := baseDSN(t)
	create := `CREATE DATABASE `
	if migrated {
		template.once.Do(func() {
			name := "coffer_template_" + strings.ToLower(rand.Text())
			if template.err = admin(base, create+name); template.err != nil {
				return
			}
			template.name = name
			var s *Store
			if s, template.err = Open(context.Background(), withDatabase(t, base, name), nil); template.err == nil {
				s.Close()
			}
		})
		if template.err != nil {
			t.Fatalf("create template database: %v", template.err)
		}
		create = `CREATE DATABASE %s TEMPLATE ` + template.name
	} else {
		create += "%s"
	}
	name := "coffer_test_" + strings.ToLower(rand.Text())
	if err := admin(base, fmt.Sprintf(create, name)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if err := admin(base, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(t, base, name)
}

// open opens a store on dsn and closes it when the test ends.
func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	baseDSN(t)
	t.Parallel() // with TestDSNOptions: the suites mostly wait for round trips
	metastoretest.Run(t, func(t *testing.T) metastore.Store { return open(t, freshDB(t, true)) })
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	for _, dsn := range []string{"", "  ", "postgres://user@host:notaport/db", "host=x port=y=z"} {
		if _, err := Open(ctx, dsn, nil); !errors.Is(err, coffer.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", dsn, err)
		}
	}
	// A malformed DSN's password is not repeated in the error.
	if _, err := Open(ctx, "postgres://u:s3cret@host:notaport/db", nil); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open with a bad DSN = %v; want an error without the password", err)
	}
	// Nothing listens on port 1: the store is unavailable, not invalid.
	short, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := Open(short, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", nil)
	if !errors.Is(err, coffer.ErrUnavailable) {
		t.Errorf("Open of an unreachable server = %v, want ErrUnavailable", err)
	}
}

// TestConcurrentOpen starts several stores at once on a fresh database: the migration lock lets
// exactly one apply the schema, and all of them work.
func TestConcurrentOpen(t *testing.T) {
	dsn := freshDB(t, false)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), dsn, nil)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var rows, max int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*), max(version) FROM coffer_schema_version`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) || max != len(ms) {
		t.Fatalf("coffer_schema_version: %d rows up to %d, want %d (each migration applied once)", rows, max, len(ms))
	}
	for i, s := range stores {
		a := metastore.Account{ID: coffer.NewAccountID(), Username: fmt.Sprint("node", i), Tree: coffer.NewTreeID()}
		if _, err := s.CreateAccount(t.Context(), a, "", metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h")}); err != nil {
			t.Fatalf("store %d: CreateAccount: %v", i, err)
		}
		if _, err := stores[(i+1)%n].Account(t.Context(), a.ID); err != nil {
			t.Fatalf("store %d does not see store %d's account: %v", (i+1)%n, i, err)
		}
	}
}

// TestReopenKeepsEverything writes through one store, closes it, and reads it all back.
func TestReopenKeepsEverything(t *testing.T) {
	dsn := freshDB(t, true)
	ctx := t.Context()
	s := open(t, dsn)
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "alice", Created: time.Unix(1700000000, 123456000),
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
	s.Close()

	s = open(t, dsn)
	got, err := s.Account(ctx, a.ID)
	if err != nil || got.Username != "alice" || !got.Created.Equal(a.Created) || got.Quota != 5000 ||
		!bytes.Equal(got.Bundle, a.Bundle) || !bytes.Equal(got.Credentials.LoginKey, []byte("lk")) {
		t.Fatalf("account after reopen: %+v, %v", got, err)
	}
	h, err := s.Head(ctx, a.Tree)
	if err != nil || h.Version != 3 || string(h.Head) != "h3" || h.Owner != a.ID {
		t.Fatalf("head after reopen: %+v, %v", h, err)
	}
	n, err := s.Node(ctx, a.Tree, f1.Node)
	if err != nil || n.Version != 2 || string(n.Record) != "f v2" || n.Parent != root.Node {
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
	if got, err := s.SessionByToken(ctx, se.TokenHash); err != nil || got.ID != "s" || !got.Created.Equal(se.Created) {
		t.Fatalf("session after reopen: %+v, %v", got, err)
	}
	if err := s.CreateInvite(ctx, "inv", time.Unix(6, 0)); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("invite after reopen: CreateInvite again = %v", err)
	}
	if n, last, err := s.LoginFailures(ctx, "k"); err != nil || n != 2 || !last.Equal(time.Unix(7, 0)) {
		t.Fatalf("login failures after reopen: %d %v, %v", n, last, err)
	}
	bs, err := s.CollectableBlobs(ctx, time.Now().Add(time.Hour), 100)
	if err != nil || len(bs) != 0 {
		t.Fatalf("a referenced blob became collectable after reopen: %v, %v", bs, err)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	dsn := freshDB(t, false)
	s := open(t, dsn)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.schemaVersion(t.Context()); err != nil || v != len(ms) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(ms))
	}
	// Running the migrations again on the open store and opening again change nothing.
	if err := s.migrate(t.Context()); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	s.Close()
	s = open(t, dsn)
	var rows int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM coffer_schema_version`).Scan(&rows); err != nil || rows != len(ms) {
		t.Fatalf("coffer_schema_version has %d rows, %v; want %d", rows, err, len(ms))
	}
	// A database from a newer program is refused.
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO coffer_schema_version (version, applied) VALUES ($1, now())`, len(ms)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(t.Context(), dsn, nil); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("Open of a newer schema = %v, want ErrInvalid", err)
	}
}

func TestCommitValidation(t *testing.T) {
	s := open(t, freshDB(t, true))
	ctx := t.Context()
	c := metastore.Commit{Tree: coffer.NewTreeID(), Owner: coffer.NewAccountID(), BaseVersion: 1, Version: 3}
	if _, err := s.Commit(ctx, c); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("Commit with Version != BaseVersion+1 = %v, want ErrInvalid", err)
	}
	c.BaseVersion, c.Version = 0, 1
	if _, err := s.Commit(ctx, c); !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("first Commit for an unknown owner = %v, want ErrNotFound", err)
	}
	if _, err := s.Changes(ctx, c.Owner, 0, 0); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("Changes with limit 0 = %v, want ErrInvalid", err)
	}
	if _, err := s.CollectableBlobs(ctx, time.Now(), 0); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("CollectableBlobs with limit 0 = %v, want ErrInvalid", err)
	}
	if _, err := s.CollectableBlobs(ctx, time.Time{}, 10); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("CollectableBlobs with a zero cutoff = %v, want ErrInvalid", err)
	}
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "u", Tree: coffer.NewTreeID()}
	if _, err := s.CreateAccount(ctx, a, "", metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	huge := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: 1, Version: 2, Head: []byte("h"),
		Records: []metastore.CommitRecord{{Node: metastore.Node{Node: coffer.NewNodeID(), Version: 1 << 63}}}}
	if _, err := s.Commit(ctx, huge); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("Commit of a record version beyond int64 = %v, want ErrInvalid", err)
	}
	if err := s.AddBlob(ctx, metastore.BlobInfo{ID: [32]byte{1}, Owner: coffer.NewAccountID(), Size: 1, Created: time.Now()}); !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("AddBlob for an unknown owner = %v, want ErrNotFound", err)
	}
	if err := s.CreateSession(ctx, metastore.Session{ID: "x", Account: coffer.NewAccountID()}); !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("CreateSession for an unknown account = %v, want ErrNotFound", err)
	}
}

// TestDuplicateNodesInOneCommit: a commit that writes one node twice means the same as two
// commits writing it in turn (the second write replaces the first, which goes to the history).
func TestDuplicateNodesInOneCommit(t *testing.T) {
	s := open(t, freshDB(t, true))
	ctx := t.Context()
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "u", Tree: coffer.NewTreeID()}
	if _, err := s.CreateAccount(ctx, a, "", metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	b1, b2 := coffer.BlobID{1}, coffer.BlobID{2}
	for _, id := range []coffer.BlobID{b1, b2} {
		if err := s.AddBlob(ctx, metastore.BlobInfo{ID: id, Owner: a.ID, Size: 1, Created: time.Unix(1, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	x := coffer.NewNodeID()
	v1 := metastore.Node{Node: x, Kind: kindFile, Version: 1, Record: []byte("v1")}
	v2 := metastore.Node{Node: x, Kind: kindFile, Version: 2, Record: []byte("v2")}
	c := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: 1, Version: 2, Head: []byte("h2"), KeepVersions: 3,
		Records: []metastore.CommitRecord{{Node: v1, Blobs: []coffer.BlobID{b1, b1}}, {Node: v2, Blobs: []coffer.BlobID{b2}}},
		Folders: []metastore.FolderSummary{{Folder: x, Count: 1, Root: [32]byte{1}}, {Folder: x, Count: 2, Root: [32]byte{2}}}}
	if _, err := s.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Node(ctx, a.Tree, x); err != nil || string(n.Record) != "v2" {
		t.Fatalf("Node = %q, %v; want v2", n.Record, err)
	}
	if v, err := s.Versions(ctx, a.Tree, x); err != nil || len(v) != 1 || string(v[0]) != "v1" {
		t.Fatalf("Versions = %q, %v; want [v1]", v, err)
	}
	if fs, err := s.Bucket(ctx, a.Tree, x[0]); err != nil || len(fs) != 1 || fs[0].Count != 2 {
		t.Fatalf("Bucket = %+v, %v; want the last summary", fs, err)
	}
	var refs int64
	if err := s.pool.QueryRow(ctx, `SELECT refs FROM blobs WHERE id = $1`, b1[:]).Scan(&refs); err != nil || refs != 1 {
		t.Fatalf("refs of a blob named twice by one record = %d, %v; want 1", refs, err)
	}
	// A record that does not raise the version is refused and nothing is applied.
	c = metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: 2, Version: 3, Head: []byte("h3"),
		Records: []metastore.CommitRecord{{Node: metastore.Node{Node: coffer.NewNodeID(), Version: 1}}, {Node: v2}}}
	if _, err := s.Commit(ctx, c); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("Commit rewriting v2 = %v, want ErrInvalid", err)
	}
	if h, err := s.Head(ctx, a.Tree); err != nil || h.Version != 2 {
		t.Fatalf("Head after a refused commit = v%d, %v", h.Version, err)
	}
}

// TestRefCountsMatchReferences checks the trigger-maintained reference counts against the rows
// they count, after a workload of replacements, trims and tombstones.
func TestRefCountsMatchReferences(t *testing.T) {
	s := open(t, freshDB(t, true))
	ctx := t.Context()
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "u", Tree: coffer.NewTreeID()}
	if _, err := s.CreateAccount(ctx, a, "", metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	shared := coffer.BlobID{0xff}
	if err := s.AddBlob(ctx, metastore.BlobInfo{ID: shared, Owner: a.ID, Size: 1, Created: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	nodes := []coffer.NodeID{coffer.NewNodeID(), coffer.NewNodeID(), coffer.NewNodeID()}
	version := uint64(1)
	for round := uint64(1); round <= 6; round++ {
		var recs []metastore.CommitRecord
		for i, n := range nodes {
			own := coffer.BlobID{byte(round), byte(i)}
			if err := s.AddBlob(ctx, metastore.BlobInfo{ID: own, Owner: a.ID, Size: 1, Created: time.Unix(1, 0)}); err != nil {
				t.Fatal(err)
			}
			kind := uint8(kindFile)
			if i == 2 {
				kind = 1 // a folder: replaced records are not kept
			}
			rec := metastore.CommitRecord{Node: metastore.Node{Node: n, Kind: kind, Version: round}, Blobs: []coffer.BlobID{own, shared}}
			if round == 6 && i == 0 {
				rec.Tombstone = true
			}
			recs = append(recs, rec)
		}
		c := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: version, Version: version + 1, Head: []byte("h"),
			Records: recs, KeepVersions: int(4 - round%3)}
		if _, err := s.Commit(ctx, c); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		version++
		var bad int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM blobs b
			WHERE b.refs <> (SELECT count(*) FROM node_blobs nb WHERE nb.blob = b.id)`).Scan(&bad); err != nil {
			t.Fatal(err)
		}
		if bad != 0 {
			t.Fatalf("round %d: %d blobs whose refs disagree with node_blobs", round, bad)
		}
		var orphans int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM node_blobs nb WHERE NOT EXISTS
			(SELECT 1 FROM nodes n WHERE n.tree = nb.tree AND n.node = nb.node AND n.version = nb.version)
			AND NOT EXISTS (SELECT 1 FROM history h WHERE h.tree = nb.tree AND h.node = nb.node AND h.version = nb.version)`).Scan(&orphans); err != nil {
			t.Fatal(err)
		}
		if orphans != 0 {
			t.Fatalf("round %d: %d references from records that are neither live nor kept", round, orphans)
		}
	}
}

// TestQueriesDuringChildren runs other queries while a Children iteration holds a connection.
func TestQueriesDuringChildren(t *testing.T) {
	s := open(t, freshDB(t, true))
	ctx := t.Context()
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "u", Tree: coffer.NewTreeID()}
	root := coffer.NewNodeID()
	var recs []metastore.CommitRecord
	for range 50 {
		recs = append(recs, metastore.CommitRecord{Node: metastore.Node{Node: coffer.NewNodeID(), Parent: root, Kind: kindFile, Version: 1, Record: []byte("r")}})
	}
	if _, err := s.CreateAccount(ctx, a, "", metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h"), Records: recs}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for c, err := range s.Children(ctx, a.Tree, root) {
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Node(ctx, a.Tree, c.Node)
		if err != nil || got.Node != c.Node || got.Parent != root {
			t.Fatalf("Node during Children: %+v, %v", got, err)
		}
		n++
	}
	if n != len(recs) {
		t.Fatalf("Children yielded %d, want %d", n, len(recs))
	}
}

// TestChildrenStreams checks that Children holds only a few rows in memory: halfway through a
// 15 MB listing, the live heap has grown by far less than the listing's size.
func TestChildrenStreams(t *testing.T) {
	s := open(t, freshDB(t, true))
	ctx := t.Context()
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "u", Tree: coffer.NewTreeID()}
	root := coffer.NewNodeID()
	const n, size = 10_000, 1500
	recs := make([]metastore.CommitRecord, n)
	for i := range recs {
		rec := make([]byte, size)
		rand.Read(rec)
		recs[i] = metastore.CommitRecord{Node: metastore.Node{Node: coffer.NewNodeID(), Parent: root, Kind: kindFile, Version: 1, Record: rec}}
	}
	if _, err := s.CreateAccount(ctx, a, "", metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h"), Records: recs}); err != nil {
		t.Fatal(err)
	}
	recs = nil
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var during uint64
	i := 0
	for _, err := range s.Children(ctx, a.Tree, root) {
		if err != nil {
			t.Fatal(err)
		}
		if i++; i == n/2 {
			during = heap()
		}
	}
	if i != n {
		t.Fatalf("Children yielded %d, want %d", i, n)
	}
	if grown := int64(during) - int64(before); grown > n*size/4 {
		t.Fatalf("live heap grew by %d bytes halfway through a %d-byte listing: rows are not streamed", grown, n*size)
	} else {
		t.Logf("live heap grew by %d bytes halfway through a %d-byte listing", grown, n*size)
	}
}

// TestDSNOptions runs the conformance suite's core through a store in its own schema
// (search_path) with uncached statements (default_query_exec_mode=exec, as behind PgBouncer).
func TestDSNOptions(t *testing.T) {
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			dsn := freshDB(t, false)
			t.Parallel()
			if err := admin(dsn, `CREATE SCHEMA tenant`); err != nil {
				t.Fatal(err)
			}
			s := open(t, dsn+"&search_path=tenant&default_query_exec_mode="+mode)
			var schema string
			if err := s.pool.QueryRow(t.Context(), `SELECT table_schema FROM information_schema.tables WHERE table_name = 'nodes'`).Scan(&schema); err != nil || schema != "tenant" {
				t.Fatalf("table nodes is in schema %q (%v), want tenant", schema, err)
			}
			// Every subtest starts from empty tables.
			metastoretest.Run(t, func(t *testing.T) metastore.Store {
				_, err := s.pool.Exec(t.Context(), `DO $$ BEGIN
					EXECUTE (SELECT 'TRUNCATE ' || string_agg(format('%I.%I', schemaname, tablename), ', ')
						FROM pg_tables WHERE schemaname = 'tenant' AND tablename <> 'coffer_schema_version');
				END $$`)
				if err != nil {
					t.Fatalf("truncate: %v", err)
				}
				return s
			})
		})
	}
}
