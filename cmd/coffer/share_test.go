package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/hostile"
	"coffer/internal/metastore/sqlite"
)

// TestSharedFolders is the shared-folder scenario through the binary, with alice, bob
// and carol on one server: a swapped public key for bob is detected before alice shares; alice
// shares a folder read-only with bob and read-write with carol; bob cannot write (the server
// refuses, and a forged write injected straight into the store is refused by alice's client);
// carol's edits appear for alice and bob and count against alice's quota; alice revokes carol,
// who loses access while bob keeps reading (re-keyed automatically).
func TestSharedFolders(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := newUser(t, srv.url, "alice's password here")
	bob := newUser(t, srv.url, "bob's password here")
	carol := newUser(t, srv.url, "carol's password here")
	alice.ok("signup", "alice")
	bob.ok("signup", "bob")
	carol.ok("signup", "carol")
	local := t.TempDir()
	src := filepath.Join(local, "proj")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello team\n"))
	writeFile(t, filepath.Join(src, "sub", "b.bin"), randomBytes(t, 1<<20+3))
	alice.ok("put", src, "/")

	// Usage and errors.
	alice.fails(exitUsage, "share", "/proj", "bob")
	alice.fails(exitUsage, "share", "/proj", "bob", "--read", "--write")
	alice.fails(exitUsage, "share", "proj", "bob", "--read")
	alice.fails(exitNotFound, "share", "/missing", "bob", "--read", "--unverified")
	alice.fails(exitUsage, "share", "accept")

	// Alice pins and verifies bob's real key; then the server swaps it: sharing stops.
	bobFP := strings.TrimSpace(bob.ok("contact", "fingerprint"))
	if r := alice.fails(exitAuth, "share", "/proj", "bob", "--read"); !strings.Contains(r.stderr, "not compared") {
		t.Fatalf("share to an unverified contact: %s", r)
	}
	alice.ok(append([]string{"contact", "verify", "bob"}, strings.Fields(bobFP)...)...)
	orig := swapPublicKeys(t, srv, "bob")
	if r := alice.fails(exitVerify, "share", "/proj", "bob", "--read"); !strings.Contains(r.stderr, "HAS CHANGED") {
		t.Fatalf("share with a swapped key: %s", r)
	}
	if out := alice.ok("ls", "/"); out != "proj/\n" {
		t.Fatalf("the refused share changed the drive: %q", out)
	}
	restorePublicKeys(t, srv, "bob", orig)

	// The shares: bob read-only (verified), carol read-write (unverified, loudly).
	alice.ok("share", "/proj", "bob", "--read")
	if r := alice.run("share", "/proj", "carol", "--write", "--unverified"); r.code != 0 || !strings.Contains(r.stderr, "WARNING") {
		t.Fatalf("share --unverified: %s", r)
	}
	var ls struct {
		Incoming []struct {
			ID, Owner, Status, KeyState string
			Path                        string
		} `json:"incoming"`
	}
	bob.jsonOut(&ls, "share", "ls", "--json")
	if len(ls.Incoming) != 1 || ls.Incoming[0].Owner != "alice" || ls.Incoming[0].Status != "invited" {
		t.Fatalf("bob's share ls: %+v", ls)
	}
	id := ls.Incoming[0].ID
	if out := strings.TrimSpace(bob.ok("share", "accept", id)); out != "/proj" {
		t.Fatalf("bob accept: %q", out)
	}
	carol.ok("mkdir", "/team")
	if out := strings.TrimSpace(carol.ok("share", "accept", id, "--as", "/team/p")); out != "/team/p" {
		t.Fatalf("carol accept --as: %q", out)
	}
	if out := bob.ok("cat", "/proj/a.txt"); out != "hello team\n" {
		t.Fatalf("bob cat: %q", out)
	}
	if out := alice.ok("share", "ls"); !strings.Contains(out, "bob") || !strings.Contains(out, "accepted") {
		t.Fatalf("alice's share ls: %q", out)
	}

	// Bob cannot write: refused (exit 3, "read-only"), nothing changes.
	note := writeFile(t, filepath.Join(local, "note.txt"), []byte("bob was here"))
	if r := bob.fails(exitAuth, "put", note, "/proj/"); !strings.Contains(r.stderr, "read-only") {
		t.Fatalf("bob put: %s", r)
	}
	bob.fails(exitAuth, "mkdir", "/proj/x")
	bob.fails(exitAuth, "rm", "/proj/a.txt")

	// Carol writes; alice and bob see it; it counts against alice's quota.
	var q0, q1, c0, c1 struct{ Used int64 }
	alice.jsonOut(&q0, "quota", "--json")
	carol.jsonOut(&c0, "quota", "--json")
	edit := writeFile(t, filepath.Join(local, "carol.bin"), randomBytes(t, 300_000))
	carol.ok("put", edit, "/team/p/sub/")
	carol.ok("mv", "/team/p/a.txt", "/team/p/readme.txt")
	if out := alice.ok("ls", "/proj"); out != "readme.txt\nsub/\n" {
		t.Fatalf("alice ls after carol's edits: %q", out)
	}
	got := filepath.Join(t.TempDir(), "carol.bin")
	bob.ok("get", "/proj/sub/carol.bin", got)
	if b1, _ := os.ReadFile(got); len(b1) != 300_000 {
		t.Fatalf("bob get carol.bin: %d bytes", len(b1))
	}
	alice.jsonOut(&q1, "quota", "--json")
	carol.jsonOut(&c1, "quota", "--json")
	if q1.Used < q0.Used+300_000 || c1.Used != c0.Used {
		t.Fatalf("quota: alice %d -> %d, carol %d -> %d", q0.Used, q1.Used, c0.Used, c1.Used)
	}
	if r := carol.run("du", "/team/p"); r.code != 0 || !strings.Contains(r.stderr, "alice's quota") {
		t.Fatalf("carol du: %s", r)
	}
	alice.fails(exitError, "mv", "/proj/readme.txt", "/readme.txt")

	// Alice revokes carol: carol loses access, bob keeps reading, alice writes on.
	alice.ok("share", "revoke", "/proj", "carol")
	after := writeFile(t, filepath.Join(local, "after.txt"), []byte("after carol\n"))
	alice.ok("put", after, "/proj/")
	if r := carol.run("ls", "/team/p"); r.code == 0 {
		t.Fatalf("carol still lists: %s", r)
	}
	if r := carol.fails(exitNotFound, "put", note, "/team/p/"); !strings.Contains(r.stderr, "no longer gives this account access") {
		t.Fatalf("carol put after removal: %s", r)
	}
	if out := bob.ok("cat", "/proj/after.txt"); out != "after carol\n" {
		t.Fatalf("bob after the rotation: %q", out)
	}
	var out struct {
		Outgoing []struct {
			Members []struct{ Username, Status string } `json:"members"`
		} `json:"outgoing"`
	}
	alice.jsonOut(&out, "share", "ls", "--json")
	states := map[string]string{}
	for _, m := range out.Outgoing[0].Members {
		states[m.Username] = m.Status
	}
	if states["bob"] != "accepted" || states["carol"] != "removed" {
		t.Fatalf("alice's members after revoke: %+v", states)
	}

	// Head exchange for the shared folder (heads PATH): both members check the same folder head,
	// which is not their account tree's.
	type headsJSON struct {
		Tree    string `json:"tree"`
		Version uint64 `json:"version"`
		Hash    string `json:"hash"`
	}
	var hb, ha, hacct headsJSON
	bob.jsonOut(&hb, "heads", "/proj", "--json")
	alice.jsonOut(&ha, "heads", "/proj", "--json")
	alice.jsonOut(&hacct, "heads", "--json")
	if hb.Tree != ha.Tree || hb.Hash != ha.Hash || hb.Version == 0 || ha.Tree == hacct.Tree {
		t.Fatalf("heads of the shared folder: bob %+v, alice %+v, alice's account %+v", hb, ha, hacct)
	}

	// A write forged by bob (a reader) straight into the server's store: every client refuses
	// the folder (exit 6) rather than show it.
	injectAsMember(t, srv, bob, "/proj", "forged.txt")
	if r := alice.fails(exitVerify, "ls", "/proj"); !strings.Contains(r.stderr, "may not write") {
		t.Fatalf("alice after the forged write: %s", r)
	}
	bob.fails(exitVerify, "ls", "/proj")
	// Alice's own tree is untouched.
	alice.ok("ls", "/")
}

// swapPublicKeys replaces username's public-key record in the server's store with a valid,
// self-signed record of another key (a hostile server) and returns the original.
func swapPublicKeys(t *testing.T, srv *testServer, username string) []byte {
	t.Helper()
	db := openDB(t, srv)
	var acct, orig []byte
	if err := db.QueryRow("SELECT id, public_keys FROM accounts WHERE username = ?", username).Scan(&acct, &orig); err != nil {
		t.Fatal(err)
	}
	fake := format.NewBundle(coffer.AccountID(acct)).PublicKeys(username).Marshal()
	if _, err := db.Exec("UPDATE accounts SET public_keys = ? WHERE username = ?", fake, username); err != nil {
		t.Fatal(err)
	}
	return orig
}

func restorePublicKeys(t *testing.T, srv *testServer, username string, orig []byte) {
	t.Helper()
	if _, err := openDB(t, srv).Exec("UPDATE accounts SET public_keys = ? WHERE username = ?", orig, username); err != nil {
		t.Fatal(err)
	}
}

func openDB(t *testing.T, srv *testServer) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(srv.dataDir, "meta.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// injectAsMember forges, with u's own keys (read from its session), a new file in the root of
// the shared folder mounted at mount: posted, the server refuses it (403); then it commits it
// straight into the server's store.
func injectAsMember(t *testing.T, srv *testServer, u *user, mount, name string) {
	t.Helper()
	ctx := context.Background()
	var sess struct {
		Account   coffer.AccountID `json:"account"`
		Token     string           `json:"token"`
		MasterKey string           `json:"master_key"`
	}
	b, err := os.ReadFile(filepath.Join(u.configDir, "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sess); err != nil {
		t.Fatal(err)
	}
	get := func(p string) []byte {
		req, _ := http.NewRequest("GET", srv.url+p, nil)
		req.Header.Set("Authorization", "Bearer "+sess.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
		}
		return body
	}
	var info api.AccountInfo
	if err := json.Unmarshal(get("/v1/account"), &info); err != nil {
		t.Fatal(err)
	}
	mk, _ := hex.DecodeString(sess.MasterKey)
	bundle, err := format.OpenBundle(info.Bundle, format.MasterKey(mk), sess.Account)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Shared string `json:"shared"`
		ID     string `json:"id"`
	}
	u.jsonOut(&st, "stat", "--json", mount)
	tree, err := coffer.ParseTreeID(st.Shared)
	if err != nil {
		t.Fatalf("stat %s: not a shared folder: %+v", mount, st)
	}
	var tk format.TreeKey
	for _, s := range bundle.Shares {
		if s.Tree == tree {
			tk = s.Key
		}
	}
	// The root folder's key: its record at the top level, under the tree key.
	top := get("/v1/trees/" + tree.String() + "/folders/" + coffer.NodeID{}.String())
	rootID, _ := coffer.ParseNodeID(st.ID)
	var rootKey format.NodeKey
	for p := top; len(p) >= 5; {
		n := int(p[1])<<24 | int(p[2])<<16 | int(p[3])<<8 | int(p[4])
		if p[0] == api.FrameRecord {
			if r, err := format.ParseRecord(p[5 : 5+n]); err == nil && r.Node == rootID {
				if rootKey, err = r.OpenKey(tk.WrapKey()); err != nil {
					t.Fatal(err)
				}
			}
		}
		p = p[5+n:]
	}
	var owner []byte
	db := openDB(t, srv)
	if err := db.QueryRow("SELECT owner FROM trees WHERE id = ?", tree[:]).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	listing := get("/v1/trees/" + tree.String() + "/folders/" + rootID.String())
	// Posted, the forged commit is refused by the server (403: a reader may not write).
	req, _, err := hostile.ForgeFile(listing, rootID, rootKey.WrapKey(), bundle.SigningKey(), "posted-"+name)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(req)
	hr, _ := http.NewRequest("POST", srv.url+"/v1/trees/"+tree.String()+"/commit", bytes.NewReader(body))
	hr.Header.Set("Authorization", "Bearer "+sess.Token)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the member's forged commit: HTTP %d, want 403", resp.StatusCode)
	}
	// Written straight into the store instead.
	store, err := sqlite.Open(ctx, filepath.Join(srv.dataDir, "meta.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := hostile.InjectFile(ctx, store, coffer.AccountID(owner), listing, rootID, rootKey.WrapKey(), bundle.SigningKey(), name); err != nil {
		t.Fatal(err)
	}
}
