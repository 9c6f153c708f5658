package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"coffer/client"
)

// migrateData is what fillServer stored, to be read back after a migration.
type migrateData struct {
	user     string
	password []byte
	files    map[string][]byte // remote path -> content
	versions map[string]int    // remote path -> number of versions
	trash    []string
	links    int
}

// fillServer runs a node on (db, blobs), signs two users up through the client library and
// stores folders, files (one of several chunks and blobs), overwritten versions, moves and a
// trashed file; then it stops the node.
func fillServer(t *testing.T, db, blobs string) []migrateData {
	t.Helper()
	ctx := context.Background()
	e := node(t, db, blobs)
	defer func() { e.srv.Close(); e.ts.Close() }()
	local := t.TempDir()
	write := func(name string, size int) (string, []byte) {
		data := make([]byte, size)
		rand.Read(data)
		p := filepath.Join(local, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p, data
	}
	var out []migrateData
	var clients []*client.Client
	for i, name := range []string{"dora", "emil"} {
		d := migrateData{user: name, password: []byte("pw " + name), files: map[string][]byte{}, versions: map[string]int{}}
		c, err := client.Signup(ctx, clientConfig(e.ts.URL, t.TempDir()), client.SignupOptions{Username: name, Password: d.password, Device: "fill"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Mkdir(ctx, "/docs/deep", true); err != nil {
			t.Fatal(err)
		}
		put := func(localName string, size int, remoteDir string, overwrite bool) []byte {
			p, data := write(localName, size)
			if _, err := c.Upload(ctx, []string{p}, remoteDir, client.TransferOptions{Overwrite: overwrite}); err != nil {
				t.Fatalf("upload %s: %v", localName, err)
			}
			return data
		}
		d.files["/docs/a.txt"] = put("a.txt", 100+i, "/docs", false)
		d.files["/docs/deep/big.bin"] = put("big.bin", 5<<20+123, "/docs/deep", false) // two blobs
		put("notes.txt", 10, "/", false)
		put("notes.txt", 20, "/", true)
		d.files["/notes.txt"] = put("notes.txt", 30, "/", true)
		d.versions["/notes.txt"] = 3
		put("gone.txt", 50, "/docs", false)
		if err := c.Remove(ctx, "/docs/gone.txt"); err != nil {
			t.Fatal(err)
		}
		d.trash = []string{"gone.txt"}
		if err := c.Move(ctx, "/docs/a.txt", "/docs/deep"); err != nil {
			t.Fatal(err)
		}
		d.files["/docs/deep/a.txt"] = d.files["/docs/a.txt"]
		delete(d.files, "/docs/a.txt")
		if _, err := c.CreateLink(ctx, "/notes.txt", client.LinkOptions{MaxDownloads: 3}); err != nil {
			t.Fatalf("create link: %v", err)
		}
		d.links = 1
		out = append(out, d)
		clients = append(clients, c)
	}
	// Emil shares /docs with dora (rosters and members tables): dora reads it through her mount.
	sh, err := clients[1].Share(ctx, "/docs", "dora", client.ShareOptions{Write: true, Unverified: true})
	if err != nil {
		t.Fatalf("share: %v", err)
	}
	if _, err := clients[0].AcceptShare(ctx, sh.Tree.String(), "/from-emil"); err != nil {
		t.Fatalf("accept: %v", err)
	}
	out[0].files["/from-emil/deep/a.txt"] = out[1].files["/docs/deep/a.txt"]
	if _, err := CreateInviteIn(ctx, StoreConfig{DB: db}); err != nil {
		t.Fatal(err)
	}
	addLegacyBlob(t, StoreConfig{DB: db, Blobs: blobs})
	return out
}

func clientConfig(server, state string) client.Config {
	return client.Config{Server: server, StateDir: state, KDF: cheapKDF(), MinKDF: cheapKDF(),
		Logger: slog.New(slog.DiscardHandler)}
}

// checkServer runs a node on (db, blobs) and reads everything back through the client library,
// which verifies every record, head and chunk.
func checkServer(t *testing.T, db, blobs string, want []migrateData) {
	t.Helper()
	ctx := context.Background()
	e := node(t, db, blobs)
	defer func() { e.srv.Close(); e.ts.Close() }()
	for _, d := range want {
		c, err := client.Login(ctx, clientConfig(e.ts.URL, t.TempDir()), d.user, d.password, "check")
		if err != nil {
			t.Fatalf("login %s after migration: %v", d.user, err)
		}
		for p, data := range d.files {
			var buf bytes.Buffer
			if err := c.Cat(ctx, p, &buf); err != nil {
				t.Fatalf("%s: cat %s: %v", d.user, p, err)
			}
			if !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("%s: %s: content differs after migration", d.user, p)
			}
		}
		for p, n := range d.versions {
			vs, err := c.Versions(ctx, p)
			if err != nil || len(vs) != n {
				t.Fatalf("%s: versions of %s: %d, %v; want %d", d.user, p, len(vs), err, n)
			}
		}
		if ls, err := c.Links(ctx); err != nil || len(ls) != d.links {
			t.Fatalf("%s: links after migration: %d, %v; want %d", d.user, len(ls), err, d.links)
		}
		tr, err := c.Trash(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range tr {
			names = append(names, e.Name)
		}
		if !slices.Equal(names, d.trash) {
			t.Fatalf("%s: trash %v, want %v", d.user, names, d.trash)
		}
	}
}

func migrate(t *testing.T, from, to StoreConfig) (int, string) {
	t.Helper()
	var progress, report bytes.Buffer
	n, err := Migrate(context.Background(), MigrateConfig{From: from, To: to, Progress: &progress, Report: &report, Workers: 3})
	if err != nil {
		t.Fatalf("migrate: %v\n%s%s", err, progress.String(), report.String())
	}
	return n, progress.String() + report.String()
}

// TestMigrateSQLite copies SQLite+disk to SQLite+disk (no services needed), checks resumption
// and that verification catches a destination that differs.
func TestMigrateSQLite(t *testing.T) {
	dir := t.TempDir()
	src := StoreConfig{DB: filepath.Join(dir, "a", "meta.db"), Blobs: filepath.Join(dir, "a")}
	dst := StoreConfig{DB: "sqlite:" + filepath.Join(dir, "b", "meta.db"), Blobs: "file:" + filepath.Join(dir, "b")}
	data := fillServer(t, src.DB, src.Blobs)
	n, out := migrate(t, src, dst)
	if n != 0 {
		t.Fatalf("%d problems:\n%s", n, out)
	}
	for _, want := range []string{"migrate: verified accounts: 2 rows", "migrate: verified invites: 1 rows", "migrate: verified links: 2 rows", "checked"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	checkServer(t, dst.DB, dst.Blobs, data)
	checkBlobCRCsCopied(t, src, dst)

	// Again: everything is present already.
	n, out = migrate(t, src, dst)
	if n != 0 || !strings.Contains(out, "table nodes:") || !strings.Contains(out, ", 0 copied,") {
		t.Fatalf("second run: %d problems:\n%s", n, out)
	}

	// blobs.refs (not copied) was recomputed by the destination's triggers: GC depends on it.
	db := openSQLiteForTest(t, strings.TrimPrefix(dst.DB, "sqlite:"))
	var wrong, refs int
	if err := db.QueryRowContext(context.Background(), `SELECT
		(SELECT count(*) FROM blobs WHERE refs != (SELECT count(*) FROM node_blobs WHERE blob = blobs.id)),
		(SELECT coalesce(sum(refs), 0) FROM blobs)`).Scan(&wrong, &refs); err != nil || wrong != 0 || refs == 0 {
		t.Fatalf("destination blobs.refs: %d wrong of total %d refs, %v", wrong, refs, err)
	}

	// A destination row that differs from the source is reported.
	if _, err := db.ExecContext(context.Background(), `UPDATE accounts SET quota = 12345 WHERE username = 'dora'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	n, out = migrate(t, src, dst)
	if n != 1 || !strings.Contains(out, "problem: table accounts: 2 rows each, but their contents differ") {
		t.Fatalf("tampered destination: %d problems:\n%s", n, out)
	}

	// A blob missing in the source is not copied, the rest is, and the verification reports it.
	var victim string
	filepath.WalkDir(filepath.Join(dir, "a", "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && victim == "" {
			victim = p
		}
		return nil
	})
	if victim == "" || os.Remove(victim) != nil {
		t.Fatal("no blob file to remove")
	}
	third := StoreConfig{DB: filepath.Join(dir, "c", "meta.db"), Blobs: filepath.Join(dir, "c")}
	n, out = migrate(t, src, third)
	if n != 1 || !strings.Contains(out, "is missing in the source") || !strings.Contains(out, filepath.Base(victim)) {
		t.Fatalf("missing source blob: %d problems:\n%s", n, out)
	}

	// Refusals.
	if _, err := Migrate(context.Background(), MigrateConfig{From: src, To: src}); err == nil || !strings.Contains(err.Error(), "same database") {
		t.Fatalf("migrate onto itself: %v", err)
	}
	if _, err := Migrate(context.Background(), MigrateConfig{From: src, To: StoreConfig{Blobs: dir}}); err == nil {
		t.Fatal("migrate without a destination database succeeded")
	}
	for _, from := range []StoreConfig{
		{DB: filepath.Join(dir, "typo.db"), Blobs: src.Blobs},
		{DB: src.DB, Blobs: filepath.Join(dir, "typo")},
	} {
		if _, err := Migrate(context.Background(), MigrateConfig{From: from, To: dst}); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("migrate from a mistyped source %+v: %v", from, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo.db")); err == nil {
		t.Fatal("a mistyped source database was created")
	}
}

// TestMigrateRoundTrip: SQLite+disk -> PostgreSQL+S3 -> SQLite+disk, the client reading
// everything back on the PostgreSQL+S3 and the final stores.
func TestMigrateRoundTrip(t *testing.T) {
	pg := freshPG(t)
	s3url := freshS3(t, "migrated")
	dir := t.TempDir()
	a := StoreConfig{DB: filepath.Join(dir, "a", "meta.db"), Blobs: filepath.Join(dir, "a")}
	b := StoreConfig{DB: pg, Blobs: s3url}
	c := StoreConfig{DB: filepath.Join(dir, "c", "meta.db"), Blobs: filepath.Join(dir, "c")}
	data := fillServer(t, a.DB, a.Blobs)
	if n, out := migrate(t, a, b); n != 0 {
		t.Fatalf("to PostgreSQL+S3: %d problems:\n%s", n, out)
	}
	checkServer(t, b.DB, b.Blobs, data)
	checkBlobCRCsCopied(t, a, b)
	if n, out := migrate(t, b, c); n != 0 {
		t.Fatalf("back to SQLite+disk: %d problems:\n%s", n, out)
	}
	checkServer(t, c.DB, c.Blobs, data)
	checkBlobCRCsCopied(t, a, c)
	var buf bytes.Buffer
	if n, err := FsckIn(context.Background(), b, &buf); n != 0 || err != nil {
		t.Fatalf("fsck of PostgreSQL+S3: %d %v\n%s", n, err, buf.String())
	}
}

// openSQLiteForTest opens a SQLite file directly, to tamper with rows.
func openSQLiteForTest(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}
