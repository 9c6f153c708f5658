package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestServeStoreFlagsConfigMigrate: serve with --config naming the stores, /metrics, then
// admin fsck with the same config, admin migrate to other stores and fsck of those.
func TestServeStoreFlagsConfigMigrate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "server.conf")
	writeFile(t, conf, []byte("# test\ndb = sqlite:"+filepath.Join(dir, "m", "meta.db")+"\n\nblobs = file:"+
		filepath.Join(dir, "b")+"\nquota = 5MiB\n"))
	os.Chmod(conf, 0o600)
	srv := startServer(t, "--config", conf)
	alice := newUser(t, srv.url, "pw for alice")
	alice.ok("signup", "alice")
	content := randomBytes(t, 70000)
	alice.ok("put", writeFile(t, filepath.Join(t.TempDir(), "f.bin"), content), "/f.bin")
	var q struct{ Quota int64 }
	alice.jsonOut(&q, "quota", "--json")
	if q.Quota != 5<<20 {
		t.Fatalf("quota from the config file: %+v", q)
	}
	resp, err := http.Get(srv.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), "coffer_blob_puts_total 1\n") {
		t.Fatalf("metrics:\n%s", m)
	}
	for _, p := range []string{filepath.Join(dir, "m", "meta.db"), filepath.Join(dir, "b", "blobs")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("store not where the config file says: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(srv.dataDir, "meta.db")); err == nil {
		t.Fatal("meta.db created in --data although --db was set")
	}
	srv.stop()

	admin := newUser(t, "", "")
	if out := admin.ok("admin", "fsck", "--config", conf); !strings.Contains(out, "0 problems") {
		t.Fatalf("fsck: %s", out)
	}
	to := filepath.Join(dir, "to")
	r := admin.run("admin", "migrate", "--from-db", filepath.Join(dir, "m", "meta.db"), "--from-blobs", filepath.Join(dir, "b"),
		"--to-db", filepath.Join(to, "meta.db"), "--to-blobs", to)
	if r.code != 0 || !strings.Contains(r.stderr, "migrate: verified accounts: 1 rows") || !strings.Contains(r.stderr, "copied and verified") {
		t.Fatalf("migrate: %s", r)
	}
	if out := admin.ok("admin", "fsck", "--data", to); !strings.Contains(out, "0 problems") {
		t.Fatalf("fsck of the copy: %s", out)
	}
	// The copy serves the same files (a new login: sessions are not migrated).
	srv2 := startServer(t, "--db", filepath.Join(to, "meta.db"), "--blobs", to)
	bob := newUser(t, srv2.url, "pw for alice")
	bob.ok("login", "alice")
	if got := bob.ok("cat", "/f.bin"); got != string(content) {
		t.Fatal("content differs after migrate")
	}

	admin.fails(exitUsage, "admin", "migrate", "--from-db", "x.db")
	admin.fails(exitUsage, "admin", "migrate", "--from-db", "mysql://h/db", "--from-blobs", "a", "--to-db", "b.db", "--to-blobs", "b")
	bad := writeFile(t, filepath.Join(dir, "bad.conf"), []byte("db = x.db\nlisten-on = 1\n"))
	if r := admin.fails(exitUsage, "serve", "--config", bad); !strings.Contains(r.stderr, "line 2: unknown key \"listen-on\"") {
		t.Fatalf("bad config: %s", r)
	}
	if r := admin.fails(exitUsage, "serve", "--db", "mysql://u:hunter2@h/db"); strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("password echoed: %s", r)
	}
}

// TestApplyConfigFile: flags beat environment variables beat the file; serve-only keys are
// ignored by admin commands; duplicates and malformed lines are usage errors naming the line.
func TestApplyConfigFile(t *testing.T) {
	dir := t.TempDir()
	mk := func(admin bool) (*cobra.Command, map[string]*string) {
		c := &cobra.Command{Use: "x"}
		c.SetErr(io.Discard)
		vals := map[string]*string{}
		names := []string{"db", "blobs", "quota", "data"}
		if admin {
			names = names[:2]
		}
		for _, n := range names {
			vals[n] = c.Flags().String(n, "", "")
		}
		c.Flags().String("config", "", "")
		return c, vals
	}
	file := writeFile(t, filepath.Join(dir, "c.conf"), []byte("db = from-file.db\nblobs = /from/file\nquota = 1GiB\n data =  /d  \n"))
	os.Chmod(file, 0o600)
	t.Setenv("COFFER_BLOBS", "/from/env")
	c, v := mk(false)
	c.Flags().Parse([]string{"--quota", "2GiB"})
	if err := applyConfigFile(c, file); err != nil {
		t.Fatal(err)
	}
	if *v["db"] != "from-file.db" || *v["blobs"] != "" || *v["quota"] != "2GiB" || *v["data"] != "/d" {
		t.Fatalf("values: db=%q blobs=%q quota=%q data=%q", *v["db"], *v["blobs"], *v["quota"], *v["data"])
	}
	a, av := mk(true)
	a.Flags().Parse(nil)
	if err := applyConfigFile(a, file); err != nil || *av["db"] != "from-file.db" {
		t.Fatalf("admin: %v %q", err, *av["db"])
	}
	for content, want := range map[string]string{
		"db = a\ndb = b\n": "line 2: \"db\" already set on line 1",
		"nonsense\n":       "line 1: want key = value",
		"server = x\n":     "line 1: unknown key \"server\"",
	} {
		f := writeFile(t, filepath.Join(dir, "bad.conf"), []byte(content))
		c, _ := mk(false)
		c.Flags().Parse(nil)
		err := applyConfigFile(c, f)
		if err == nil || !strings.Contains(err.Error(), want) || exitCode(err) != exitUsage {
			t.Errorf("%q: %v, want a usage error with %q", content, err, want)
		}
	}
	c, _ = mk(false)
	if err := applyConfigFile(c, filepath.Join(dir, "missing.conf")); err == nil || exitCode(err) != exitUsage {
		t.Errorf("missing file: %v", err)
	}
}
