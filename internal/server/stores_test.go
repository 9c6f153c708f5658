package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer"
	"coffer/internal/blobstore/disk"
	"coffer/internal/metastore/sqlite"
)

func TestParseDBURL(t *testing.T) {
	for in, want := range map[string][2]string{
		"":                                {"sqlite", ""},
		"/srv/coffer/meta.db":             {"sqlite", "/srv/coffer/meta.db"},
		"rel/meta.db":                     {"sqlite", "rel/meta.db"},
		"sqlite:/srv/m.db":                {"sqlite", "/srv/m.db"},
		"sqlite:///srv/m.db":              {"sqlite", "/srv/m.db"},
		`C:\coffer\meta.db`:               {"sqlite", `C:\coffer\meta.db`},
		"postgres://u@h/db":               {"postgres", "postgres://u@h/db"},
		"postgresql://u:pw@h:5432/db?x=1": {"postgres", "postgresql://u:pw@h:5432/db?x=1"},
	} {
		k, loc, err := ParseDBURL(in)
		if err != nil || k != want[0] || loc != want[1] {
			t.Errorf("ParseDBURL(%q) = %q, %q, %v; want %v", in, k, loc, err, want)
		}
	}
	for _, bad := range []string{"sqlite:", "mysql://u:hunter2@h/db", "http://x"} {
		_, _, err := ParseDBURL(bad)
		if !errors.Is(err, coffer.ErrInvalid) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseDBURL(%q): %v", bad, err)
		}
	}
	if r := RedactDB("postgres://coffer:hunter2@db:5432/coffer?sslmode=require"); strings.Contains(r, "hunter2") || !strings.Contains(r, "coffer:xxxxx@db") {
		t.Errorf("RedactDB: %q", r)
	}
	if r := RedactDB("postgres://coffer@db/coffer?password=hunter2"); strings.Contains(r, "hunter2") {
		t.Errorf("RedactDB with a password parameter: %q", r)
	}
}

func TestOpenStores(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	// Defaults: everything in the data directory.
	st, err := OpenStores(ctx, StoreConfig{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Meta.(*sqlite.Store); !ok || st.Cluster != nil || st.Postgres {
		t.Fatalf("default stores: %T cluster=%v", st.Meta, st.Cluster)
	}
	if _, ok := st.Blobs.(*disk.Store); !ok {
		t.Fatalf("default blob store %T", st.Blobs)
	}
	s1, err := st.Secret(ctx, nil)
	if err != nil || len(s1) != 32 {
		t.Fatal(err)
	}
	st.Close()
	for _, p := range []string{"meta.db", "blobs", "server.secret"} {
		if _, err := os.Stat(filepath.Join(dir, "data", p)); err != nil {
			t.Errorf("default layout: %v", err)
		}
	}
	st, _ = OpenStores(ctx, StoreConfig{DataDir: filepath.Join(dir, "data")})
	if s2, _ := st.Secret(ctx, nil); string(s1) != string(s2) {
		t.Error("secret not stable across opens")
	}
	st.Close()

	// Explicit places, directories created; nothing in DataDir.
	st, err = OpenStores(ctx, StoreConfig{DataDir: filepath.Join(dir, "unused"),
		DB: "sqlite:" + filepath.Join(dir, "m", "x.db"), Blobs: "file://" + filepath.Join(dir, "b")})
	if err != nil {
		t.Fatal(err)
	}
	if st.DB != "sqlite:"+filepath.Join(dir, "m", "x.db") || st.BlobsDesc != "file:"+filepath.Join(dir, "b") {
		t.Errorf("descriptions %q %q", st.DB, st.BlobsDesc)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, "unused")); err == nil {
		t.Error("data directory created although no store lives there")
	}

	for _, c := range []struct {
		cfg  StoreConfig
		want string
	}{
		{StoreConfig{}, "data directory not set"},
		{StoreConfig{DB: filepath.Join(dir, "y.db")}, "data directory not set"},
		{StoreConfig{DataDir: dir, Blobs: "http://x/y"}, "want a directory"},
		{StoreConfig{DataDir: dir, Blobs: "file:"}, "want a directory"},
		{StoreConfig{DataDir: dir, Blobs: "s3://b?bogus=1"}, "unknown parameter"},
		{StoreConfig{DataDir: dir, DB: "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=1"}, "metadata store postgres://u:xxxxx@127.0.0.1:1/db"},
	} {
		st, err := OpenStores(ctx, c.cfg)
		if err == nil {
			st.Close()
			t.Errorf("%+v: opened", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
