package hostile

// Scenarios 33 (fork) and 34 (freeze) for shared folders: the members of a shared folder
// exchange heads through the server (PUT /v1/trees/{tree}/seen serves the publications of every
// accepted member's devices), so the server can neither keep one member on an old head of the
// folder nor show two members diverging histories of it without the members noticing.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"coffer"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// onTree applies hook only to the requests on tree's routes (/v1/trees/{tree}/...): the proxy
// tampers with one shared folder and leaves the account trees alone.
func onTree(tree coffer.TreeID, hook testenv.Hook) testenv.Hook {
	prefix := "/v1/trees/" + tree.String() + "/"
	return func(req *http.Request, resp *http.Response) error {
		if !strings.HasPrefix(req.URL.Path, prefix) {
			return nil
		}
		return hook(req, resp)
	}
}

// gossipDevice logs user in as a new device that exchanges heads only when asked (CheckHeadsAt),
// through the proxy or directly.
func gossipDevice(t *testing.T, env *testenv.Env, user string, proxied bool) *client.Client {
	t.Helper()
	cfg := env.Config(t.TempDir())
	cfg.GossipEvery = -1
	if !proxied {
		cfg.Server = env.URL
	}
	c, err := client.Login(context.Background(), cfg, user, testenv.Password(user), user+"-device")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// treeHead returns the current head of tree as the server stores it.
func treeHead(t *testing.T, env *testenv.Env, tree coffer.TreeID) *format.Head {
	t.Helper()
	mh, err := env.Meta.Head(context.Background(), tree)
	if err != nil {
		t.Fatal(err)
	}
	h, err := format.ParseHead(mh.Head)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// expectFreeze checks err is a freeze report naming the tree and both heads.
func expectFreeze(t *testing.T, what string, err error, tree coffer.TreeID, heads ...*format.Head) {
	t.Helper()
	if !errors.Is(err, client.ErrFreeze) || !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("%s: %v, want a freeze error (ErrFreeze, ErrRollback)", what, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, tree.String()) {
		t.Errorf("%s: %q does not name the tree", what, msg)
	}
	for _, h := range heads {
		hh := h.Hash()
		if name := "v" + utoa(h.Version) + " (" + shortHex(hh[:8]) + ")"; !strings.Contains(msg, name) {
			t.Errorf("%s: %q does not name head %s", what, msg, name)
		}
	}
}

// names returns the names of entries.
func names(es []*client.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name
	}
	slices.Sort(out)
	return out
}

// listNames lists p and checks it holds exactly want.
func listNames(t *testing.T, c *client.Client, what, p string, want ...string) {
	t.Helper()
	es, err := c.List(context.Background(), p)
	if err != nil {
		t.Fatalf("%s: list %s: %v", what, p, err)
	}
	slices.Sort(want)
	if got := names(es); !slices.Equal(got, want) {
		t.Fatalf("%s: list %s: %v, want %v", what, p, got, want)
	}
}

func TestScenario34_SharedFolderFreeze(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, true, true)
	env := f.env
	// Alice's device reaches the server directly; bob's goes through the hostile proxy.
	alice, bob := gossipDevice(t, env, "alice", false), gossipDevice(t, env, "bob", true)
	if _, err := alice.CheckHeadsAt(ctx, "/proj"); err != nil {
		t.Fatal(err)
	}
	// Bob's device verifies head H of the shared folder; the proxy records what it served.
	keep := &branchKeeper{}
	env.SetHook(onTree(f.tree, keep.record))
	if _, err := bob.CheckHeadsAt(ctx, "/proj"); err != nil {
		t.Fatal(err)
	}
	listNames(t, bob, "bob", "/proj", "a.txt", "sub")
	env.SetHook(nil)
	frozen := treeHead(t, env, f.tree)
	// Alice writes twice into the shared folder and publishes the head she verified.
	for _, p := range []string{"/proj/new1", "/proj/new2"} {
		if _, err := alice.Mkdir(ctx, p, false); err != nil {
			t.Fatal(err)
		}
	}
	newer := treeHead(t, env, f.tree)
	if newer.Version != frozen.Version+2 {
		t.Fatalf("versions: frozen %d, newer %d", frozen.Version, newer.Version)
	}
	rep, err := alice.CheckHeadsAt(ctx, "/proj")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tree != f.tree || rep.Version != newer.Version {
		t.Fatalf("alice's exchange: tree %v v%d, want %v v%d", rep.Tree, rep.Version, f.tree, newer.Version)
	}
	if i := slices.IndexFunc(rep.Devices, func(d client.DeviceHead) bool { return d.Device == "bob-device" }); i < 0 ||
		rep.Devices[i].Version != frozen.Version {
		t.Fatalf("alice's exchange does not show bob's publication of v%d: %+v", frozen.Version, rep.Devices)
	}

	// The server freezes the shared folder for bob: old listings, the old head as current. Bob's
	// own view stays consistent until he exchanges heads.
	env.SetHook(onTree(f.tree, keep.replay))
	listNames(t, bob, "bob frozen, before the exchange", "/proj", "a.txt", "sub")
	_, err = bob.CheckHeadsAt(ctx, "/proj")
	expectFreeze(t, "bob's exchange", err, f.tree, frozen, newer)
	// Alice's head extends bob's chain: bob remembers it, and the frozen state is now refused as
	// a rollback. Bob's own tree is not affected.
	expectListRefused(t, bob, "/proj", coffer.ErrRollback)
	if _, err := bob.List(ctx, "/"); err != nil {
		t.Fatalf("bob's account tree during the freeze: %v", err)
	}
	if rep, err := bob.CheckHeadsAt(ctx, "/"); err != nil || rep.Tree == f.tree {
		t.Fatalf("bob's exchange for his account tree during the freeze: %+v %v", rep, err)
	}
	// A new device of bob, frozen from its first view on (it exchanges heads at its first listing
	// of the tree, the default): its first listing of the folder fails.
	fresh := f.fresh(t, "bob")
	_, err = fresh.List(ctx, "/proj")
	expectFreeze(t, "bob's new device, first listing", err, f.tree, frozen, newer)

	// The freeze ends: bob reads alice's writes, and writes (a freeze is not a fork).
	env.SetHook(nil)
	listNames(t, bob, "bob after the freeze", "/proj", "a.txt", "sub", "new1", "new2")
	listNames(t, fresh, "bob's new device after the freeze", "/proj", "a.txt", "sub", "new1", "new2")
	if _, err := bob.Mkdir(ctx, "/proj/bobs", false); err != nil {
		t.Fatalf("bob writes after the freeze: %v", err)
	}
	listNames(t, alice, "alice", "/proj", "a.txt", "sub", "new1", "new2", "bobs")
	for _, c := range []*client.Client{alice, bob, fresh} {
		if _, err := c.CheckHeadsAt(ctx, "/proj"); err != nil {
			t.Fatalf("exchange after the freeze: %v", err)
		}
	}
}

func TestScenario33_SharedFolderFork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, true, true)
	env := f.env
	alice, bob := gossipDevice(t, env, "alice", false), gossipDevice(t, env, "bob", true)
	for _, c := range []*client.Client{alice, bob} {
		if _, err := c.CheckHeadsAt(ctx, "/proj"); err != nil {
			t.Fatal(err)
		}
	}
	// The server forks the folder: bob commits A, the store goes back to before A, and alice
	// commits B1 and B2 on the old state. The proxy keeps bob on branch A.
	snap := snapshotStore(t, env)
	if _, err := bob.Mkdir(ctx, "/proj/A", false); err != nil {
		t.Fatal(err)
	}
	a := treeHead(t, env, f.tree)
	keep := &branchKeeper{}
	env.SetHook(onTree(f.tree, keep.record))
	listNames(t, bob, "bob on branch A", "/proj", "a.txt", "sub", "A")
	env.SetHook(nil)
	restoreStore(t, env, snap)
	for _, p := range []string{"/proj/B1", "/proj/B2"} {
		if _, err := alice.Mkdir(ctx, p, false); err != nil {
			t.Fatal(err)
		}
	}
	b2 := treeHead(t, env, f.tree)
	if b2.Version != a.Version+1 {
		t.Fatalf("versions: A %d, B2 %d", a.Version, b2.Version)
	}
	// Bob's last publication is the common ancestor: no alarm yet.
	if _, err := alice.CheckHeadsAt(ctx, "/proj"); err != nil {
		t.Fatalf("alice before bob published his branch: %v", err)
	}
	env.SetHook(onTree(f.tree, keep.replay))
	listNames(t, bob, "bob kept on branch A", "/proj", "a.txt", "sub", "A")
	_, err := bob.CheckHeadsAt(ctx, "/proj")
	expectFork(t, "bob's exchange", err, f.tree, a, b2)
	_, err = alice.CheckHeadsAt(ctx, "/proj")
	expectFork(t, "alice's exchange", err, f.tree, a, b2)
	// Both refuse to write into the folder until the fork is resolved; their own trees and
	// reads of their own branch are not affected.
	_, err = bob.Mkdir(ctx, "/proj/C", false)
	expectFork(t, "bob's mkdir", err, f.tree)
	_, err = alice.Mkdir(ctx, "/proj/C", false)
	expectFork(t, "alice's mkdir", err, f.tree)
	if _, err := alice.Mkdir(ctx, "/elsewhere", false); err != nil {
		t.Fatalf("alice's account tree after the shared folder forked: %v", err)
	}
	listNames(t, alice, "alice after the fork", "/proj", "a.txt", "sub", "B1", "B2")
	// Resolution: bob accepts the server's history (branch B, his A is gone), then alice.
	env.SetHook(nil)
	if err := bob.ResolveForkAt(ctx, "/proj"); err != nil {
		t.Fatalf("bob resolves: %v", err)
	}
	if _, err := bob.Mkdir(ctx, "/proj/C", false); err != nil {
		t.Fatalf("bob writes after resolving: %v", err)
	}
	if err := alice.ResolveForkAt(ctx, "/proj"); err != nil {
		t.Fatalf("alice resolves: %v", err)
	}
	if _, err := alice.Mkdir(ctx, "/proj/D", false); err != nil {
		t.Fatalf("alice writes after resolving: %v", err)
	}
	listNames(t, bob, "bob after both resolved", "/proj", "a.txt", "sub", "B1", "B2", "C", "D")
	for _, c := range []*client.Client{alice, bob} {
		if _, err := c.CheckHeadsAt(ctx, "/proj"); err != nil {
			t.Fatalf("exchange after both resolved: %v", err)
		}
	}
}
