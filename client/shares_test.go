package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"coffer"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// verify makes a verified contact of other in c.
func verify(t testing.TB, c, other *client.Client, name string) {
	t.Helper()
	if _, err := c.VerifyContact(context.Background(), name, other.Whoami().Fingerprint); err != nil {
		t.Fatalf("verify %s: %v", name, err)
	}
}

func catString(t testing.TB, c *client.Client, p string) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.Cat(context.Background(), p, &b); err != nil {
		t.Fatalf("cat %s: %v", p, err)
	}
	return b.String()
}

func putBytes(t testing.TB, c *client.Client, remote string, content []byte) error {
	t.Helper()
	local := filepath.Join(t.TempDir(), filepath.Base(remote))
	writeFile(t, local, content)
	_, err := c.Upload(context.Background(), []string{local}, remote, client.TransferOptions{})
	return err
}

// TestSharedFolderLifecycle: alice shares a folder read-only with bob and read-write with carol;
// bob cannot write; carol's edits appear for alice and bob; carol's uploads count against
// alice's quota; after alice revokes carol, nothing written afterwards opens with any key carol
// held, and bob (re-keyed automatically) still reads everything, old versions included.
func TestSharedFolderLifecycle(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	alice, bob, carol := env.Client(t, "alice"), env.Client(t, "bob"), env.Client(t, "carol")

	src := filepath.Join(t.TempDir(), "proj")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("version one"))
	writeFile(t, filepath.Join(src, "sub", "b.bin"), randBytes(300_000))
	if _, err := alice.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := putBytes(t, alice, "/proj/a.txt", []byte("version two")); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("overwrite without flag: %v", err)
	}
	local := filepath.Join(t.TempDir(), "a.txt")
	writeFile(t, local, []byte("version two"))
	if _, err := alice.Upload(ctx, []string{local}, "/proj/a.txt", client.TransferOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}

	// An unverified contact is refused unless asked for; then bob read-only (verified) and
	// carol read-write (unverified, explicitly).
	if _, err := alice.Share(ctx, "/proj", "bob", client.ShareOptions{}); !errors.Is(err, client.ErrUnverifiedContact) || !errors.Is(err, coffer.ErrForbidden) {
		t.Fatalf("share to an unverified contact: %v", err)
	}
	verify(t, alice, bob, "bob")
	seals0 := client.HPKESeals(alice)
	res, err := alice.Share(ctx, "/proj", "bob", client.ShareOptions{})
	if err != nil || !res.Converted || !res.Verified || res.Write {
		t.Fatalf("share bob: %+v %v", res, err)
	}
	if n := client.HPKESeals(alice) - seals0; n != 1 {
		t.Fatalf("sharing made %d HPKE seals, want 1", n)
	}
	if _, err := alice.Share(ctx, "/proj", "carol", client.ShareOptions{Write: true, Unverified: true}); err != nil {
		t.Fatal(err)
	}
	if got := catString(t, alice, "/proj/a.txt"); got != "version two" {
		t.Fatalf("alice reads %q after the conversion", got)
	}
	vs, err := alice.Versions(ctx, "/proj/a.txt")
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions after conversion: %+v %v", vs, err)
	}

	// Bob and carol see invites and accept.
	l, err := bob.Shares(ctx)
	if err != nil || len(l.Incoming) != 1 || l.Incoming[0].Status != "invited" || l.Incoming[0].Owner != "alice" || l.Incoming[0].KeyState != "new" {
		t.Fatalf("bob's shares: %+v %v", l, err)
	}
	id := l.Incoming[0].ID
	acc, err := bob.AcceptShare(ctx, id, "")
	if err != nil || acc.Path != "/proj" || acc.Write {
		t.Fatalf("bob accepts: %+v %v", acc, err)
	}
	if _, err := carol.Mkdir(ctx, "/work", false); err != nil {
		t.Fatal(err)
	}
	if acc, err := carol.AcceptShare(ctx, id, "/work/p"); err != nil || acc.Path != "/work/p" || !acc.Write {
		t.Fatalf("carol accepts: %+v %v", acc, err)
	}
	es, err := bob.List(ctx, "/proj")
	if err != nil || len(es) != 2 || es[0].Path != "/proj/a.txt" || es[1].Name != "sub" {
		t.Fatalf("bob lists: %v %v", names(es), err)
	}
	if got := catString(t, bob, "/proj/a.txt"); got != "version two" {
		t.Fatalf("bob reads %q", got)
	}

	dl := t.TempDir()
	if _, err := bob.Download(ctx, []string{"/proj"}, dl, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dl, "proj", "a.txt")); err != nil || string(b) != "version two" {
		t.Fatalf("bob downloads the mount into a folder: %q %v", b, err)
	}
	// A download of the whole drive goes through the mount.
	all := t.TempDir()
	if res, err := alice.Download(ctx, []string{"/"}, all, client.TransferOptions{}); err != nil || res.Files != 2 {
		t.Fatalf("alice downloads /: %+v %v", res, err)
	}
	if b, err := os.ReadFile(filepath.Join(all, "proj", "sub", "b.bin")); err != nil || len(b) != 300_000 {
		t.Fatalf("alice's download of / through the mount: %d bytes, %v", len(b), err)
	}
	if _, err := alice.CreateLink(ctx, "/proj/a.txt", client.LinkOptions{}); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("link into a shared folder: %v", err)
	}

	// Bob cannot write: refused before anything is sent.
	if err := putBytes(t, bob, "/proj/bob.txt", []byte("x")); !errors.Is(err, client.ErrReadOnly) || !errors.Is(err, coffer.ErrForbidden) {
		t.Fatalf("bob writes: %v", err)
	}
	if _, err := bob.Mkdir(ctx, "/proj/d", false); !errors.Is(err, coffer.ErrForbidden) {
		t.Fatalf("bob mkdir: %v", err)
	}
	if err := bob.Move(ctx, "/proj/a.txt", "/a.txt"); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("move out of the shared folder: %v", err)
	}

	// Carol writes; alice and bob see it; it counts against alice's quota.
	aliceUse, _ := alice.Usage(ctx)
	carolUse, _ := carol.Usage(ctx)
	big := randBytes(200_000)
	if err := putBytes(t, carol, "/work/p/sub/carol.bin", big); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Mkdir(ctx, "/work/p/new", false); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bob.Cat(ctx, "/proj/sub/carol.bin", &buf); err != nil || !bytes.Equal(buf.Bytes(), big) {
		t.Fatalf("bob reads carol's file: %v", err)
	}
	if _, err := alice.Stat(ctx, "/proj/new"); err != nil {
		t.Fatalf("alice sees carol's folder: %v", err)
	}
	aliceUse2, _ := alice.Usage(ctx)
	carolUse2, _ := carol.Usage(ctx)
	if aliceUse2.Used < aliceUse.Used+200_000 || carolUse2.Used != carolUse.Used {
		t.Fatalf("quota: alice %d -> %d, carol %d -> %d", aliceUse.Used, aliceUse2.Used, carolUse.Used, carolUse2.Used)
	}
	if sh, err := carol.ShareOf(ctx, "/work/p/sub"); err != nil || sh == nil || sh.Owner != "alice" || !sh.Write {
		t.Fatalf("carol ShareOf: %+v %v", sh, err)
	}
	// The shared folder's own trash; a walk of the drive goes through the mount.
	if err := carol.Remove(ctx, "/work/p/new"); err != nil {
		t.Fatal(err)
	}
	tr, err := alice.TrashIn(ctx, "/proj")
	if err != nil || len(tr) != 1 || tr[0].Name != "new" || tr[0].TrashOrigin != "/proj" {
		t.Fatalf("trash of the shared folder: %+v %v", tr, err)
	}
	if err := alice.RestoreTrashIn(ctx, "/proj", "new", ""); err != nil {
		t.Fatal(err)
	}
	var walked []string
	if err := alice.Walk(ctx, "/", func(e *client.Entry) error { walked = append(walked, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/", "/proj", "/proj/a.txt", "/proj/new", "/proj/sub", "/proj/sub/b.bin", "/proj/sub/carol.bin"}; !slices.Equal(walked, want) {
		t.Fatalf("walk through the mount: %v, want %v", walked, want)
	}

	// What carol holds before she is removed.
	tkOld, nodeKeys, contentKeys, err := client.HeldKeys(ctx, carol, "/work/p")
	if err != nil || len(nodeKeys) < 5 {
		t.Fatalf("held keys: %d %v", len(nodeKeys), err)
	}

	// A second device of bob, warm before the rotation.
	bob2, err := client.Login(ctx, env.Config(t.TempDir()), "bob", testenv.Password("bob"), "second")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob2.List(ctx, "/proj"); err != nil {
		t.Fatal(err)
	}
	rv, err := alice.Revoke(ctx, "/proj", "carol")
	if err != nil || rv.Epoch != 2 || rv.Members != 1 || rv.Seals != 1 {
		t.Fatalf("revoke: %+v %v", rv, err)
	}
	secret := []byte("written after carol left")
	if err := putBytes(t, alice, "/proj/new/after.txt", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.List(ctx, "/work/p"); err == nil {
		t.Fatal("carol still lists the folder after her removal")
	}
	if err := putBytes(t, carol, "/work/p/x.txt", []byte("x")); err == nil {
		t.Fatal("carol still writes after her removal")
	}

	// Every record of the folder now (the re-keyed ones and the new file) resists every key
	// carol held: her tree key and every node key as a wrapping key or a body key.
	raws, err := client.RawRecords(ctx, alice, "/proj")
	if err != nil || len(raws) < 7 {
		t.Fatalf("raw records: %d %v", len(raws), err)
	}
	for _, raw := range raws {
		r, err := format.ParseRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		wraps := []format.WrapKey{tkOld.WrapKey()}
		for _, nk := range nodeKeys {
			wraps = append(wraps, nk.WrapKey())
			if _, err := r.OpenBody(nk); err == nil {
				t.Fatalf("record %v opens with a node key carol held", r.Node)
			}
		}
		for _, w := range wraps {
			if _, err := r.OpenKey(w); err == nil {
				t.Fatalf("record %v's key unwraps with a key carol held", r.Node)
			}
		}
	}
	// The new file's content key is none of hers either (it is inside the body anyway).
	e, err := alice.Stat(ctx, "/proj/new/after.txt")
	if err != nil {
		t.Fatal(err)
	}
	_ = e
	_ = contentKeys

	// Bob is re-keyed automatically and reads old and new, and the history of a.txt.
	if got := catString(t, bob, "/proj/new/after.txt"); got != string(secret) {
		t.Fatalf("bob reads %q after the rotation", got)
	}
	if got := catString(t, bob, "/proj/a.txt"); got != "version two" {
		t.Fatalf("bob reads a.txt: %q", got)
	}
	vs, err = bob.Versions(ctx, "/proj/a.txt")
	if err != nil || len(vs) < 2 {
		t.Fatalf("bob: versions across the rotation: %+v %v", vs, err)
	}
	if got := catString(t, bob2, "/proj/new/after.txt"); got != string(secret) {
		t.Fatalf("bob's second device reads %q after the rotation", got)
	}
	// Alice (a second device, fresh state) also reads everything.
	a2, err := client.Login(ctx, env.Config(t.TempDir()), "alice", testenv.Password("alice"), "second")
	if err != nil {
		t.Fatal(err)
	}
	if got := catString(t, a2, "/proj/new/after.txt"); got != string(secret) {
		t.Fatalf("alice's second device reads %q", got)
	}

	// Bob leaves: the mount is gone and access ends.
	if err := bob.LeaveShare(ctx, "/proj"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Stat(ctx, "/proj"); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("after leave: %v", err)
	}
	if err := alice.LeaveShare(ctx, "/proj"); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("owner leaves: %v", err)
	}
	// A later rotation sends no key to bob, who left (an invite would invite him again).
	dave := env.Client(t, "dave")
	if _, err := alice.Share(ctx, "/proj", "dave", client.ShareOptions{Unverified: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.AcceptShare(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if rv, err := alice.Revoke(ctx, "/proj", "dave"); err != nil || rv.Members != 0 || rv.Seals != 0 {
		t.Fatalf("revoke dave: %+v %v", rv, err)
	}
	if l, err := bob.Shares(ctx); err != nil || len(l.Incoming) != 1 || l.Incoming[0].Status != "left" {
		t.Fatalf("bob after leaving: %+v %v", l, err)
	}
	l, err = alice.Shares(ctx)
	if err != nil || len(l.Outgoing) != 1 || l.Outgoing[0].Path != "/proj" {
		t.Fatalf("alice's shares: %+v %v", l, err)
	}
}

// TestShareConversionResumes: a conversion interrupted after the shared tree was created (its
// answer lost), or before the old descendants were deleted, is finished by re-running Share;
// nothing is lost or duplicated, and the folder reads fine in between.
func TestShareConversionResumes(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	alice, bob := env.Client(t, "alice"), env.Client(t, "bob")
	src := t.TempDir()
	for _, d := range []string{"one", "two"} {
		writeFile(t, filepath.Join(src, d, "a.txt"), []byte("a"))
		writeFile(t, filepath.Join(src, d, "d", "b.txt"), []byte("b"))
	}
	if _, err := alice.Upload(ctx, []string{filepath.Join(src, "one"), filepath.Join(src, "two")}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	verify(t, alice, bob, "bob")
	walk := func(p string) []string {
		var out []string
		if err := alice.Walk(ctx, p, func(e *client.Entry) error { out = append(out, e.Path); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		dir  string
		fail func(req *http.Request, created *bool) bool
	}{
		// The creation's answer is lost (the server created the tree).
		{"/one", func(req *http.Request, _ *bool) bool { return req.Method == "POST" && req.URL.Path == "/v1/trees" }},
		// Every account commit after the creation fails: the old descendants stay for now.
		{"/two", func(req *http.Request, created *bool) bool {
			if req.Method == "POST" && req.URL.Path == "/v1/trees" {
				*created = true
			}
			return *created && strings.HasSuffix(req.URL.Path, "/commit")
		}},
	} {
		created := false
		env.SetHook(func(req *http.Request, resp *http.Response) error {
			if tc.fail(req, &created) {
				return errors.New("answer lost")
			}
			return nil
		})
		if _, err := alice.Share(ctx, tc.dir, "bob", client.ShareOptions{}); err == nil {
			t.Fatalf("%s: share with lost answers succeeded", tc.dir)
		}
		env.SetHook(nil)
		if got := catString(t, alice, tc.dir+"/d/b.txt"); got != "b" {
			t.Fatalf("%s: half-converted folder reads %q", tc.dir, got)
		}
		res, err := alice.Share(ctx, tc.dir, "bob", client.ShareOptions{})
		if err != nil || !res.Already {
			t.Fatalf("%s: re-run: %+v %v", tc.dir, res, err)
		}
		want := []string{tc.dir, tc.dir + "/a.txt", tc.dir + "/d", tc.dir + "/d/b.txt"}
		if got := walk(tc.dir); !slices.Equal(got, want) {
			t.Fatalf("%s after the re-run: %v", tc.dir, got)
		}
	}
	// Both folders are shared (one invite each), and nothing is left in the account tree below
	// the mounts: a walk of the drive sees every file once.
	if got := len(walk("/")); got != 9 {
		t.Fatalf("walk / after the conversions: %d entries", got)
	}
	l, err := bob.Shares(ctx)
	if err != nil || len(l.Incoming) != 2 {
		t.Fatalf("bob's invites: %+v %v", l, err)
	}
}
