package main

import (
	"strings"
	"testing"
)

// TestContacts drives `coffer contact` through the binary: pin on first sight, compare, verify,
// list, remove.
func TestContacts(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := newUser(t, srv.url, "correct horse battery staple")
	alice.ok("signup", "alice")
	bob := newUser(t, srv.url, "bob's own password here")
	bob.ok("signup", "bob")

	own := strings.TrimSpace(bob.ok("contact", "fingerprint"))
	if len(strings.Fields(own)) != 8 {
		t.Fatalf("own fingerprint %q", own)
	}
	seen := strings.TrimSpace(alice.ok("contact", "fingerprint", "bob"))
	if seen != own {
		t.Fatalf("alice sees %q, bob has %q", seen, own)
	}
	if out := alice.ok("contact", "ls"); !strings.Contains(out, "bob") || !strings.Contains(out, "unverified") {
		t.Fatalf("contact ls: %q", out)
	}
	alice.fails(exitVerify, "contact", "verify", "bob", strings.Repeat("12345 ", 8))
	alice.fails(exitNotFound, "contact", "add", "nobody")
	alice.ok(append([]string{"contact", "verify", "bob"}, strings.Fields(own)...)...)
	var list []struct {
		Username string `json:"username"`
		Verified bool   `json:"verified"`
	}
	alice.jsonOut(&list, "contact", "ls", "--json")
	if len(list) != 1 || list[0].Username != "bob" || !list[0].Verified {
		t.Fatalf("contact ls --json: %+v", list)
	}
	alice.ok("contact", "rm", "bob")
	alice.fails(exitNotFound, "contact", "rm", "bob")
	if out := alice.ok("contact", "ls"); out != "" {
		t.Fatalf("contact ls after rm: %q", out)
	}
}
