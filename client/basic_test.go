package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer"
	"coffer/client"
	"coffer/internal/testenv"
)

func names(es []*client.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func TestSignupMkdirMoveTrash(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "alice")
	if _, err := client.Signup(ctx, env.Config(""), client.SignupOptions{Username: "alice", Password: []byte("x")}); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("duplicate signup: %v", err)
	}
	if _, err := client.Signup(ctx, env.Config(""), client.SignupOptions{Username: "Bad Name", Password: []byte("x")}); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("invalid username: %v", err)
	}
	if _, err := c.Mkdir(ctx, "/a/b/c", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mkdir(ctx, "/a/b/c", true); err != nil {
		t.Fatalf("mkdir -p existing: %v", err)
	}
	if _, err := c.Mkdir(ctx, "/a/b", false); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("mkdir existing: %v", err)
	}
	if _, err := c.Mkdir(ctx, "/x/y", false); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("mkdir missing parent: %v", err)
	}
	es, err := c.List(ctx, "/a")
	if err != nil || len(es) != 1 || es[0].Name != "b" || !es[0].IsDir || es[0].Path != "/a/b" {
		t.Fatalf("list /a: %v %v", names(es), err)
	}
	if err := c.Move(ctx, "/a/b", "/a/b/c"); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("move into descendant: %v", err)
	}
	if err := c.Move(ctx, "/a/b", "/"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, "/b/c"); err != nil {
		t.Fatalf("children follow the folder: %v", err)
	}
	if err := c.Remove(ctx, "/b"); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trash(ctx)
	if err != nil || len(tr) != 1 || tr[0].TrashOrigin != "/" || tr[0].Name != "b" {
		t.Fatalf("trash: %+v %v", tr, err)
	}
	if err := c.RestoreTrash(ctx, "b", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, "/b/c"); err != nil {
		t.Fatalf("restored: %v", err)
	}
	if err := c.Remove(ctx, "/b"); err != nil {
		t.Fatal(err)
	}
	n, err := c.EmptyTrash(ctx)
	if err != nil || n != 2 {
		t.Fatalf("empty trash: %d %v", n, err)
	}
	// A fresh login sees the same state.
	c2, err := client.Login(ctx, env.Config(t.TempDir()), "alice", testenv.Password("alice"), "second")
	if err != nil {
		t.Fatal(err)
	}
	es, err = c2.List(ctx, "/")
	if err != nil || len(es) != 1 || es[0].Name != "a" {
		t.Fatalf("list / from second device: %v %v", names(es), err)
	}
}

// TestListBigFolderFreesNodes: List of a folder at least the big-folder size keeps only the
// folder's verified commitment entries in the view (its decrypted nodes are freed), and
// everything still works on that view: listing again, uploading into the folder (the commit
// needs the entries), renaming in it and downloading from it.
func TestListBigFolderFreesNodes(t *testing.T) {
	env := testenv.New(t)
	c := env.Client(t, "lena")
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "d")
	os.Mkdir(src, 0o755)
	for i := range 30 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), []byte{byte(i)})
	}
	if _, err := c.Upload(ctx, []string{src}, "/d", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	d, err := c.Stat(ctx, "/d")
	if err != nil {
		t.Fatal(err)
	}
	client.SetBigFolder(c, 20)
	es, err := c.List(ctx, "/d")
	if err != nil || len(es) != 30 || es[0].Name != "f00" || es[29].Name != "f29" || es[29].Path != "/d/f29" {
		t.Fatalf("list: %d entries, %v", len(es), err)
	}
	if nodes, ents := client.CachedFolder(c, d.ID); nodes || !ents {
		t.Fatalf("after List of a big folder: nodes cached %v, entries cached %v; want false, true", nodes, ents)
	}
	extra := filepath.Join(t.TempDir(), "extra")
	writeFile(t, extra, []byte("x"))
	if _, err := c.Upload(ctx, []string{extra}, "/d", client.TransferOptions{}); err != nil {
		t.Fatalf("upload into the listed folder: %v", err)
	}
	if err := c.Move(ctx, "/d/f03", "/d/g03"); err != nil {
		t.Fatalf("rename in the listed folder: %v", err)
	}
	es, err = c.List(ctx, "/d")
	if err != nil || len(es) != 31 {
		t.Fatalf("list again: %d entries, %v", len(es), err)
	}
	var buf bytes.Buffer
	if err := c.Cat(ctx, "/d/g03", &buf); err != nil || !bytes.Equal(buf.Bytes(), []byte{3}) {
		t.Fatalf("cat: %q %v", buf.Bytes(), err)
	}
	// Below the size, the decrypted folder stays cached.
	client.SetBigFolder(c, 1000)
	if _, err := c.List(ctx, "/d"); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := client.CachedFolder(c, d.ID); !nodes {
		t.Fatal("small folder not cached after List")
	}
}

// TestListRecordsThatDoNotOpen: a listing that verifies against the head but whose records do
// not open under the folder's key is refused by both List paths, naming the folder, and no
// entry is returned.
func TestListRecordsThatDoNotOpen(t *testing.T) {
	env := testenv.New(t)
	c := env.Client(t, "olga")
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "d")
	os.Mkdir(src, 0o755)
	for i := range 1200 { // more than one batch of opened records
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%04d", i)), []byte{byte(i)})
	}
	if _, err := c.Upload(ctx, []string{src}, "/d", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	ln, lerr, nn, nerr := client.ListUnderWrongKey(ctx, c, "/d")
	for _, r := range []struct {
		path string
		n    int
		err  error
	}{{"light", ln, lerr}, {"nodes", nn, nerr}} {
		if r.err == nil || r.n != 0 {
			t.Errorf("%s path: %d entries, %v; want a refusal and none", r.path, r.n, r.err)
			continue
		}
		if !errors.Is(r.err, coffer.ErrAuth) || !strings.Contains(r.err.Error(), "/d") {
			t.Errorf("%s path: %v; want ErrAuth naming /d", r.path, r.err)
		}
	}
}
