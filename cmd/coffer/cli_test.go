package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// recoveryKeyRE matches format.RecoveryKey.String(): 11 dash-separated groups of 5 base32 chars.
var recoveryKeyRE = regexp.MustCompile(`[A-Z2-7]{5}(-[A-Z2-7]{5}){10}`)

// TestFiles drives every file command against one account on a real server.
func TestFiles(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := newUser(t, srv.url, "correct horse battery staple")
	out := alice.ok("signup", "alice")
	if !recoveryKeyRE.MatchString(out) || !strings.Contains(out, "Store it") {
		t.Fatalf("signup should print the recovery key with advice, got %q", out)
	}
	// The name is taken: exit 5, from another machine.
	newUser(t, srv.url, "other").fails(exitExists, "signup", "alice")

	var who map[string]string
	alice.jsonOut(&who, "whoami", "--json")
	if who["username"] != "alice" || who["server"] != srv.url || len(who["account"]) != 32 || who["fingerprint"] == "" {
		t.Fatalf("whoami --json: %v", who)
	}
	if out := alice.ok("whoami"); !strings.Contains(out, "alice") {
		t.Fatalf("whoami: %q", out)
	}

	local := t.TempDir()
	small := writeFile(t, filepath.Join(local, "a.txt"), []byte("hello, coffer\n"))
	big := writeFile(t, filepath.Join(local, "big.bin"), randomBytes(t, 3<<20+17))
	src := filepath.Join(local, "src")
	writeFile(t, filepath.Join(src, "one.txt"), []byte("one"))
	writeFile(t, filepath.Join(src, "nested", "two.txt"), []byte("two"))
	writeFile(t, filepath.Join(src, "nested", "deeper", "three.bin"), randomBytes(t, 70_000))
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("mkdir", func(t *testing.T) {
		alice := alice.with(t)
		alice.ok("mkdir", "-p", "/docs/sub/deep", "/photos")
		alice.ok("mkdir", "-p", "/docs/sub") // exists: fine with -p
		alice.fails(exitExists, "mkdir", "/docs")
		alice.fails(exitNotFound, "mkdir", "/nope/x")
		alice.fails(exitUsage, "mkdir", "docs2")
	})

	t.Run("put", func(t *testing.T) {
		alice := alice.with(t)
		// Into an existing folder, and under a new name; stdout stays empty (no tty: no bars).
		r := alice.run("put", small, "/docs")
		if r.code != 0 || r.stdout != "" {
			t.Fatalf("put into folder: %s", r)
		}
		alice.ok("put", small, "/docs/b.txt")
		alice.ok("put", big, "/big.bin")
		// A folder into an existing folder goes inside it; to a new name it becomes that name.
		alice.ok("put", src, "/photos")
		alice.ok("put", src, "/copy")
		// Several sources into a folder.
		alice.ok("put", small, big, "/docs/sub")

		// Same size and mtime: the re-run of an interrupted put skips it; anything else exists.
		if r := alice.run("put", small, "/docs/a.txt"); r.code != 0 || !strings.Contains(r.stderr, "1 unchanged, skipped") {
			t.Fatalf("put unchanged: %s", r)
		}
		alice.fails(exitExists, "put", big, "/docs/a.txt")
		alice.fails(exitNotFound, "put", filepath.Join(local, "missing.txt"), "/docs")
		alice.fails(exitUsage, "put", small, "docs/a.txt")
		if r := alice.run("-q", "put", "--force", big, "/docs/a.txt"); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Fatalf("put --force -q: %s", r)
		}
		// Symbolic links are skipped with a warning, not followed.
		links := filepath.Join(t.TempDir(), "links")
		writeFile(t, filepath.Join(links, "real.txt"), []byte("real"))
		if err := os.Symlink("/etc/passwd", filepath.Join(links, "link")); err != nil {
			t.Fatal(err)
		}
		r = alice.run("put", links, "/links")
		if r.code != 0 || !strings.Contains(r.stderr, "coffer: put: warning: ") || !strings.Contains(r.stderr, "link") {
			t.Fatalf("put with a symlink: %s", r)
		}
		if got := alice.ok("ls", "/links"); got != "real.txt\n" {
			t.Fatalf("symlink uploaded: %q", got)
		}
	})

	t.Run("ls", func(t *testing.T) {
		alice := alice.with(t)
		if got := alice.ok("ls", "/"); got != "big.bin\ncopy/\ndocs/\nlinks/\nphotos/\n" {
			t.Fatalf("ls /: %q", got)
		}
		if got := alice.ok("ls"); got != "big.bin\ncopy/\ndocs/\nlinks/\nphotos/\n" {
			t.Fatalf("ls (default /): %q", got)
		}
		long := alice.ok("ls", "-l", "/docs")
		if !strings.Contains(long, "drwx") || !strings.Contains(long, "sub/") || !regexp.MustCompile(`(?m)^-rw\S*\s+14\s.*b\.txt$`).MatchString(long) {
			t.Fatalf("ls -l /docs: %q", long)
		}
		var es []entryJSON
		alice.jsonOut(&es, "ls", "--json", "/photos/src")
		if len(es) != 3 || es[0].Name != "empty" || es[0].Type != "folder" || es[2].Name != "one.txt" ||
			es[2].Size != 3 || es[2].Path != "/photos/src/one.txt" || len(es[2].SHA256) != 64 {
			t.Fatalf("ls --json: %+v", es)
		}
		alice.fails(exitNotFound, "ls", "/nope")
		alice.fails(exitUsage, "ls", "docs")
	})

	t.Run("tree", func(t *testing.T) {
		alice := alice.with(t)
		out := alice.ok("tree", "/copy")
		for _, want := range []string{"/copy\n", "├── empty/", "└── one.txt", "│   ├── deeper/", "│   │   └── three.bin", "3 folders, 3 files"} {
			if !strings.Contains(out, want) {
				t.Fatalf("tree /copy: missing %q in\n%s", want, out)
			}
		}
		var es []entryJSON
		alice.jsonOut(&es, "tree", "--json", "/copy")
		if len(es) != 7 || es[0].Path != "/copy" {
			t.Fatalf("tree --json: %+v", es)
		}
	})

	t.Run("stat", func(t *testing.T) {
		alice := alice.with(t)
		var e entryJSON
		alice.jsonOut(&e, "stat", "--json", "/big.bin")
		if e.Type != "file" || e.Size != 3<<20+17 || e.Name != "big.bin" || e.Version < 1 {
			t.Fatalf("stat --json: %+v", e)
		}
		if out := alice.ok("stat", "/docs"); !strings.Contains(out, "folder") {
			t.Fatalf("stat: %q", out)
		}
		alice.fails(exitNotFound, "stat", "/missing")
	})

	t.Run("cat", func(t *testing.T) {
		alice := alice.with(t)
		if got := alice.ok("cat", "/docs/b.txt", "/copy/one.txt"); got != "hello, coffer\none" {
			t.Fatalf("cat: %q", got)
		}
		bigWant, _ := os.ReadFile(big)
		if got := alice.ok("cat", "/big.bin"); got != string(bigWant) {
			t.Fatalf("cat /big.bin: %d bytes differ", len(got))
		}
		alice.fails(exitNotFound, "cat", "/docs/nope.txt")
	})

	t.Run("get", func(t *testing.T) {
		alice := alice.with(t)
		dst := t.TempDir()
		r := alice.run("get", "/docs/b.txt", dst)
		if r.code != 0 || r.stdout != "" {
			t.Fatalf("get into folder: %s", r)
		}
		if b, _ := os.ReadFile(filepath.Join(dst, "b.txt")); string(b) != "hello, coffer\n" {
			t.Fatalf("got %q", b)
		}
		alice.ok("get", "/big.bin", filepath.Join(dst, "renamed.bin"))
		sameFile(t, big, filepath.Join(dst, "renamed.bin"))
		// A folder to a new name and into an existing folder.
		alice.ok("get", "/photos/src", filepath.Join(dst, "tree"))
		sameTree(t, src, filepath.Join(dst, "tree"))
		alice.ok("get", "/copy", dst)
		sameTree(t, src, filepath.Join(dst, "copy"))

		writeFile(t, filepath.Join(dst, "b.txt"), []byte("local change"))
		alice.fails(exitExists, "get", "/docs/b.txt", dst)
		if b, _ := os.ReadFile(filepath.Join(dst, "b.txt")); string(b) != "local change" {
			t.Fatalf("get without --force changed the local file: %q", b)
		}
		alice.ok("get", "--force", "/docs/b.txt", dst)
		if b, _ := os.ReadFile(filepath.Join(dst, "b.txt")); string(b) != "hello, coffer\n" {
			t.Fatalf("get --force: %q", b)
		}
		alice.fails(exitNotFound, "get", "/nope", dst)
		alice.fails(exitUsage, "get", "nope", dst)
	})

	t.Run("versions", func(t *testing.T) {
		alice := alice.with(t)
		v1 := []byte("version one\n")
		f := writeFile(t, filepath.Join(t.TempDir(), "v.txt"), v1)
		alice.ok("put", f, "/v.txt")
		writeFile(t, f, []byte("version two, longer\n"))
		alice.fails(exitExists, "put", f, "/v.txt")
		alice.ok("put", "--force", f, "/v.txt")
		var vs []versionJSON
		alice.jsonOut(&vs, "versions", "ls", "--json", "/v.txt")
		if len(vs) != 2 || !vs[0].Current || vs[0].Size != 20 || vs[1].Size != 12 || vs[0].Version <= vs[1].Version {
			t.Fatalf("versions ls --json: %+v", vs)
		}
		if out := alice.ok("versions", "ls", "/v.txt"); !strings.Contains(out, "current") {
			t.Fatalf("versions ls: %q", out)
		}
		alice.ok("versions", "restore", "/v.txt", itoa(vs[1].Version))
		if got := alice.ok("cat", "/v.txt"); got != string(v1) {
			t.Fatalf("after versions restore: %q", got)
		}
		alice.fails(exitNotFound, "versions", "restore", "/v.txt", "999")
		alice.fails(exitNotFound, "versions", "ls", "/nope.txt")
	})

	t.Run("mv", func(t *testing.T) {
		alice := alice.with(t)
		alice.ok("mv", "/docs/b.txt", "/docs/c.txt")           // rename
		alice.ok("mv", "/docs/c.txt", "/photos")               // into a folder
		alice.ok("mv", "/photos/c.txt", "/v.txt", "/docs/sub") // several into a folder
		if got := alice.ok("ls", "/docs/sub"); got != "a.txt\nbig.bin\nc.txt\ndeep/\nv.txt\n" {
			t.Fatalf("after mv: %q", got)
		}
		alice.fails(exitExists, "mv", "/docs/sub/c.txt", "/docs/sub/a.txt")
		alice.fails(exitNotFound, "mv", "/docs/nope", "/docs/x")
		alice.fails(exitUsage, "mv", "/docs/sub/c.txt", "x")
	})

	t.Run("trash", func(t *testing.T) {
		alice := alice.with(t)
		alice.ok("rm", "/docs/sub/c.txt", "/copy")
		alice.fails(exitNotFound, "stat", "/copy")
		alice.fails(exitNotFound, "rm", "/copy")
		var es []entryJSON
		alice.jsonOut(&es, "trash", "ls", "--json")
		if len(es) != 2 {
			t.Fatalf("trash ls --json: %+v", es)
		}
		origins := map[string]string{}
		for _, e := range es {
			origins[e.Name] = e.TrashOrigin
		}
		if origins["c.txt"] != "/docs/sub" || origins["copy"] != "/" {
			t.Fatalf("trash origins: %v", origins)
		}
		if out := alice.ok("trash", "ls"); !strings.Contains(out, "copy/") {
			t.Fatalf("trash ls: %q", out)
		}
		alice.ok("trash", "restore", "copy")
		alice.ok("stat", "/copy/nested/two.txt")
		alice.ok("trash", "restore", "c.txt", "/photos")
		if got := alice.ok("cat", "/photos/c.txt"); got != "hello, coffer\n" {
			t.Fatalf("restored to dst: %q", got)
		}
		alice.fails(exitNotFound, "trash", "restore", "never-there")
		alice.ok("rm", "/photos/c.txt")
		alice.ok("trash", "empty")
		alice.jsonOut(&es, "trash", "ls", "--json")
		if len(es) != 0 {
			t.Fatalf("trash after empty: %+v", es)
		}
	})

	t.Run("du-quota", func(t *testing.T) {
		alice := alice.with(t)
		var du struct {
			Path    string `json:"path"`
			Bytes   int64  `json:"bytes"`
			Files   int    `json:"files"`
			Folders int    `json:"folders"`
		}
		alice.jsonOut(&du, "du", "--json", "/copy")
		if du.Bytes != 3+3+70_000 || du.Files != 3 || du.Folders != 3 || du.Path != "/copy" {
			t.Fatalf("du --json /copy: %+v", du)
		}
		if out := alice.ok("du", "/copy"); !strings.Contains(out, "70006 bytes, 3 files, 3 folders") {
			t.Fatalf("du: %q", out)
		}
		var q struct {
			Used, Quota, Blobs int64
		}
		alice.jsonOut(&q, "quota", "--json")
		if q.Used < 3<<20 || q.Blobs < 1 || q.Quota != 0 {
			t.Fatalf("quota --json: %+v", q)
		}
		if out := alice.ok("quota"); !strings.Contains(out, "no quota") {
			t.Fatalf("quota: %q", out)
		}
	})
}

// TestAccount covers signup/login/logout/whoami/passwd/recovery-key, login --recovery-key and
// sessions ls/revoke.
func TestAccount(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := newUser(t, srv.url, "first password")
	bob.ok("signup", "bob")
	rk := strings.TrimSpace(bob.ok("recovery-key"))
	if !recoveryKeyRE.MatchString(rk) || len(rk) != 65 {
		t.Fatalf("recovery-key: %q", rk)
	}
	f := writeFile(t, filepath.Join(t.TempDir(), "note.txt"), []byte("bob's note"))
	bob.ok("put", f, "/note.txt")

	// Logged out: exit 3 everywhere.
	bob.ok("logout")
	bob.fails(exitAuth, "whoami")
	bob.fails(exitAuth, "ls", "/")
	wrong := *bob
	wrong.password = "not it"
	if r := wrong.fails(exitAuth, "login", "bob"); !strings.Contains(r.stderr, "wrong username or password") {
		t.Fatalf("wrong password: %s", r)
	}
	newUser(t, srv.url, "x").fails(exitAuth, "login", "nobody")
	bob.ok("login", "bob")
	// With a saved session, commands and a new login use its server without COFFER_SERVER.
	bob.server = ""
	if out := bob.ok("whoami"); !strings.Contains(out, srv.url) {
		t.Fatalf("whoami: %q", out)
	}
	bob.ok("login", "bob")
	bob.server = srv.url

	// A second machine; bob lists and revokes its session.
	laptop := newUser(t, srv.url, "first password")
	pwFile := writeFile(t, filepath.Join(t.TempDir(), "pw"), []byte("first password\n"))
	laptop.password = ""
	laptop.ok("--password-file", pwFile, "login", "bob")
	var ss []sessionJSON
	bob.jsonOut(&ss, "sessions", "ls", "--json")
	if len(ss) != 2 {
		t.Fatalf("sessions ls --json: %+v", ss)
	}
	other := ""
	for _, s := range ss {
		if !s.Current {
			other = s.ID
		}
		if s.Device == "" || s.Created.IsZero() {
			t.Fatalf("session without device or creation time: %+v", s)
		}
	}
	if other == "" {
		t.Fatalf("no current session marked: %+v", ss)
	}
	if out := bob.ok("sessions", "ls"); !strings.Contains(out, other) {
		t.Fatalf("sessions ls: %q", out)
	}
	laptop.ok("ls", "/")
	bob.ok("sessions", "revoke", other)
	if r := laptop.fails(exitAuth, "ls", "/"); !strings.Contains(r.stderr, "session expired or revoked") {
		t.Fatalf("revoked session: %s", r)
	}
	laptop.ok("logout") // forgets the dead session locally
	laptop.fails(exitAuth, "ls", "/")
	bob.fails(exitNotFound, "sessions", "revoke", "0123456789abcdef0123456789abcdef")

	// passwd: the old password stops working, the new one works, files stay readable.
	bob.env = []string{"COFFER_NEW_PASSWORD=second password"}
	bob.ok("passwd")
	bob.env = nil
	bob.ok("ls", "/")
	laptop.password = "first password"
	laptop.fails(exitAuth, "login", "bob")
	laptop.password = "second password"
	laptop.ok("login", "bob")
	if got := laptop.ok("cat", "/note.txt"); got != "bob's note" {
		t.Fatalf("after passwd: %q", got)
	}

	// Forgot it: the recovery key sets a third password (key on stdin, then from the env).
	phone := newUser(t, srv.url, "third password")
	if r := phone.runIn(strings.NewReader("not-a-key\n"), "login", "bob", "--recovery-key"); r.code != exitUsage {
		t.Fatalf("malformed recovery key: %s", r)
	}
	if r := phone.runIn(strings.NewReader(strings.ToLower(rk)+"\n"), "login", "bob", "--recovery-key"); r.code != 0 {
		t.Fatalf("login --recovery-key: %s", r)
	}
	if got := phone.ok("cat", "/note.txt"); got != "bob's note" {
		t.Fatalf("after recovery: %q", got)
	}
	laptop.fails(exitAuth, "login", "bob") // "second password" is gone
	laptop.password = "third password"
	laptop.ok("login", "bob")
	laptop.env = []string{"COFFER_RECOVERY_KEY=" + rk}
	laptop.password = "fourth password"
	laptop.ok("login", "--recovery-key", "bob")
	laptop.env = nil
	laptop.ok("whoami")
}

// TestInviteOnly: sign-up needs a code from `coffer admin invite`, which works while the server
// runs.
func TestInviteOnly(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--invite-only", "--quota", "1MiB")
	carol := newUser(t, srv.url, "pw for carol")
	carol.fails(exitAuth, "signup", "carol")
	admin := newUser(t, "", "")
	code := strings.TrimSpace(admin.ok("admin", "invite", "--data", srv.dataDir))
	if len(code) < 16 || strings.ContainsAny(code, " \n") {
		t.Fatalf("invite code %q", code)
	}
	carol.fails(exitAuth, "signup", "carol", "--invite", "bogus-code")
	carol.ok("signup", "carol", "--invite", code)
	newUser(t, srv.url, "pw").fails(exitAuth, "signup", "dave", "--invite", code) // single use

	// The 1 MiB quota: a 2 MiB upload is refused with exit 7.
	var q struct{ Quota int64 }
	carol.jsonOut(&q, "quota", "--json")
	if q.Quota != 1<<20 {
		t.Fatalf("quota: %+v", q)
	}
	f := writeFile(t, filepath.Join(t.TempDir(), "big"), randomBytes(t, 2<<20))
	carol.fails(exitQuota, "put", f, "/big")
}

// TestTLS: serve --tls-cert/--tls-key speaks HTTPS; a client that trusts the certificate
// (SSL_CERT_FILE) works, one that does not is refused before sending anything.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t)
	srv := startServer(t, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("url %s", srv.url)
	}
	u := newUser(t, srv.url, "pw for ivy")
	u.fails(exitUnreachable, "signup", "ivy") // certificate not trusted
	u.env = []string{"SSL_CERT_FILE=" + cert}
	u.ok("signup", "ivy")
	u.ok("mkdir", "/over-tls")
	if got := u.ok("ls"); got != "over-tls/\n" {
		t.Fatalf("ls over TLS: %q", got)
	}
}

// TestUnreachable: no server listening -> exit 8; no password on a non-tty -> exit 2.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	u := newUser(t, "http://"+freeAddr(t), "pw")
	u.fails(exitUnreachable, "login", "alice")
	u.password = ""
	r := u.fails(exitUsage, "login", "alice")
	if !strings.Contains(r.stderr, "no password: use --password-file or COFFER_PASSWORD") {
		t.Fatalf("no password: %s", r)
	}
}

func sameFile(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s and %s differ (%d vs %d bytes)", want, got, len(a), len(b))
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// TestServeDefaults: with no --data and --listen, serve uses COFFER_LISTEN and the user data
// directory ($HOME/.local/share/coffer here), and SIGTERM stops it with exit 0.
func TestServeDefaults(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(binPath, "serve")
	cmd.Env = []string{"HOME=" + home, "COFFER_LISTEN=" + addr, "PATH=" + os.Getenv("PATH")}
	var errb bytes.Buffer
	cmd.Stderr = &lockedWriter{w: &errb, mu: new(sync.Mutex)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := waitFor(15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// A second server on the same address fails with exit 1 (not 8: nothing to reach).
	second := newUser(t, "", "").run("serve", "--data", t.TempDir(), "--listen", addr)
	if second.code != exitError || !strings.Contains(second.stderr, "coffer: serve: ") {
		t.Errorf("second serve on a busy address: %s", second)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if !up || err != nil {
		t.Fatalf("serve with defaults: healthy %v, exit %v", up, err)
	}
	if _, err := os.Stat(filepath.Join(home, ".local", "share", "coffer", "meta.db")); err != nil {
		t.Fatalf("default data directory not used: %v", err)
	}
}
