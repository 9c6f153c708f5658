package main

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinks drives public links through the binary: alice links a folder and files, an
// anonymous visitor (no account, own config dir) lists, downloads and cats them; download limits,
// passwords and revocation are enforced; the secret never reaches the server's log.
func TestLinks(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := newUser(t, srv.url, "correct horse battery staple")
	alice.ok("signup", "alice")
	local := t.TempDir()
	src := filepath.Join(local, "docs")
	a := []byte("hello from a link\n")
	writeFile(t, filepath.Join(src, "a.txt"), a)
	writeFile(t, filepath.Join(src, "sub", "big.bin"), randomBytes(t, 2<<20+5))
	writeFile(t, filepath.Join(local, "private.txt"), []byte("not linked"))
	alice.ok("put", src, filepath.Join(local, "private.txt"), "/")

	folderURL := strings.TrimSpace(alice.ok("link", "create", "/docs"))
	if !strings.HasPrefix(folderURL, srv.url+"/s/") || !strings.Contains(folderURL, "#") {
		t.Fatalf("link create printed %q", folderURL)
	}
	limitedURL := strings.TrimSpace(alice.ok("link", "create", "--max-downloads", "2", "/docs/a.txt"))
	pwFile := writeFile(t, filepath.Join(local, "pw"), []byte("link password\n"))
	wrongFile := writeFile(t, filepath.Join(local, "wrong"), []byte("nope\n"))
	pwURL := strings.TrimSpace(alice.ok("link", "create", "--link-password-file", pwFile, "--expire", "7d", "/docs/a.txt"))
	alice.fails(exitNotFound, "link", "create", "/missing")
	alice.fails(exitUsage, "link", "create", "--expire", "soon", "/docs")

	// The visitor: no account, no server configured, no password.
	visitor := newUser(t, "", "")
	if out := visitor.ok("ls", folderURL); out != "a.txt\nsub/\n" {
		t.Fatalf("ls URL = %q", out)
	}
	var es []entryJSON
	visitor.jsonOut(&es, "ls", "--json", folderURL, "/sub")
	if len(es) != 1 || es[0].Name != "big.bin" || es[0].Size != 2<<20+5 {
		t.Fatalf("ls --json URL /sub = %+v", es)
	}
	dest := t.TempDir()
	visitor.ok("get", folderURL, dest)
	sameTree(t, src, filepath.Join(dest, "docs"))

	// A file link with two downloads: cat, get, then "link revoked or expired" (exit 4).
	if out := visitor.ok("cat", limitedURL); out != string(a) {
		t.Fatalf("cat URL = %q", out)
	}
	one := filepath.Join(t.TempDir(), "one.txt")
	visitor.ok("get", limitedURL, one)
	if got, _ := os.ReadFile(one); string(got) != string(a) {
		t.Fatalf("get URL FILE: %q", got)
	}
	if r := visitor.fails(exitNotFound, "cat", limitedURL); !strings.Contains(r.stderr, "link revoked or expired") {
		t.Fatalf("used-up link: %s", r)
	}

	// Password link: none given (exit 2), wrong (exit 3), right.
	visitor.fails(exitUsage, "cat", pwURL)
	visitor.fails(exitAuth, "cat", "--link-password-file", wrongFile, pwURL)
	if out := visitor.ok("cat", "--link-password-file", pwFile, pwURL); out != string(a) {
		t.Fatalf("cat password link = %q", out)
	}

	// The owner's list: three links with paths and counts.
	var links []linkJSON
	alice.jsonOut(&links, "link", "ls", "--json")
	if len(links) != 3 {
		t.Fatalf("link ls: %d links", len(links))
	}
	byStatus := map[string]int{}
	for _, l := range links {
		byStatus[l.Status]++
		if l.URL != "" || (l.Path != "/docs" && l.Path != "/docs/a.txt") {
			t.Fatalf("link ls entry %+v", l)
		}
	}
	if byStatus["active"] != 2 || byStatus["used up"] != 1 {
		t.Fatalf("link ls statuses %v", byStatus)
	}
	if out := alice.ok("link", "ls"); !strings.Contains(out, "used up") || !strings.Contains(out, "/docs") {
		t.Fatalf("link ls: %q", out)
	}

	// Revocation by URL: the old URL fails clearly.
	alice.ok("link", "revoke", folderURL)
	if r := visitor.fails(exitNotFound, "ls", folderURL); !strings.Contains(r.stderr, "link revoked or expired") {
		t.Fatalf("revoked link: %s", r)
	}
	// Revocation by the ID `link ls` shows.
	for _, l := range links {
		if l.Password {
			alice.ok("link", "revoke", l.ID)
		}
	}
	if r := visitor.fails(exitNotFound, "cat", "--link-password-file", pwFile, pwURL); !strings.Contains(r.stderr, "link revoked or expired") {
		t.Fatalf("link revoked by ID: %s", r)
	}
	alice.fails(exitNotFound, "link", "revoke", strings.Repeat("ab", 16))
	alice.fails(exitError, "link", "revoke", "not-a-link")
	// Ordinary paths still work for get/ls/cat, and a malformed URL is refused.
	alice.ok("ls", "/docs")
	visitor.fails(exitUsage, "ls", "https://example.invalid/s/abc")

	// The fragment secrets never reached the server (its log holds every request line).
	log := srv.log()
	for _, u := range []string{folderURL, limitedURL, pwURL} {
		frag := u[strings.IndexByte(u, '#')+1:]
		raw, err := base64.RawURLEncoding.DecodeString(frag)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range []string{frag, hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw)} {
			if strings.Contains(log, enc) {
				t.Fatalf("link secret found in the server log")
			}
		}
	}
	if strings.Contains(log, "link password") {
		t.Fatal("link password found in the server log")
	}
}
