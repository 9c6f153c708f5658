package client_test

import (
	"context"
	"errors"
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
