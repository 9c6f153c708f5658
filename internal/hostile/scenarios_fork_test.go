package hostile

// Scenarios 33 (fork between devices) and 34 (freeze): the server forks the account tree between
// two devices (by restoring a snapshot of its store and letting the second device write on the
// old state) and, for the consistent fork, keeps the first device on its branch through the
// proxy (replayed listings, a rewritten current head in the head exchange).

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// forkTables are the tables a store snapshot restores: everything of the trees, their feed and
// the published heads (sessions and blobs stay, so the devices stay logged in).
var forkTables = []string{"trees", "nodes", "history", "folders", "node_blobs", "changes", "account_seq", "seen_heads"}

// snapshotStore copies the server's whole SQLite store (VACUUM INTO is consistent).
func snapshotStore(t *testing.T, env *testenv.Env) string {
	t.Helper()
	snap := filepath.Join(t.TempDir(), "snap.db")
	if _, err := env.DB(t).Exec("VACUUM INTO ?", snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

// restoreStore brings the trees of the store back to the snapshot.
func restoreStore(t *testing.T, env *testenv.Env, snap string) {
	t.Helper()
	ctx := context.Background()
	conn, err := env.DB(t).Conn(ctx) // ATTACH is per connection
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("ATTACH DATABASE ? AS snap", snap)
	for _, tbl := range forkTables {
		exec("DELETE FROM main." + tbl)
		exec("INSERT INTO main." + tbl + " SELECT * FROM snap." + tbl)
	}
	exec("DETACH DATABASE snap")
}

// device logs user in with its own state directory, through the proxy or directly.
func device(t *testing.T, env *testenv.Env, user string, proxied bool) *client.Client {
	t.Helper()
	cfg := env.Config(t.TempDir())
	if !proxied {
		cfg.Server = env.URL
	}
	c, err := client.Login(context.Background(), cfg, user, testenv.Password(user), "device")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// branchKeeper records the listings one device gets and later replays them, and rewrites the
// current head of its head exchanges: the proxy keeps that device on its own branch.
type branchKeeper struct {
	mu       sync.Mutex
	listings map[string][]byte
	head     []byte // the head of the recorded top-level listing
}

func (k *branchKeeper) record(req *http.Request, resp *http.Response) error {
	if !isListing(req, resp) {
		return nil
	}
	b, err := testenv.ReadBody(resp)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.listings == nil {
		k.listings = map[string][]byte{}
	}
	k.listings[folderOf(req)] = b
	if fs, ok := splitFrames(b); ok && len(fs) > 0 && folderOf(req) == (coffer.NodeID{}).String() {
		k.head = fs[0].b
	}
	return nil
}

func (k *branchKeeper) replay(req *http.Request, resp *http.Response) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case isListing(req, resp):
		if b, ok := k.listings[folderOf(req)]; ok {
			testenv.ReplaceBody(resp, b)
		}
	case req.Method == "PUT" && strings.HasSuffix(req.URL.Path, "/seen") && resp.StatusCode == 200:
		b, err := testenv.ReadBody(resp)
		if err != nil {
			return err
		}
		var sr api.SeenResponse
		if err := json.Unmarshal(b, &sr); err != nil {
			return err
		}
		h, err := format.ParseHead(k.head)
		if err != nil {
			return err
		}
		sr.Current.Version, sr.Current.Head = h.Version, k.head
		nb, _ := json.Marshal(&sr)
		testenv.ReplaceBody(resp, nb)
	}
	return nil
}

// headOf returns the current head of the (only) tree as the server stores it.
func headOf(t *testing.T, env *testenv.Env, _ *client.Client) *format.Head {
	t.Helper()
	var raw []byte
	if err := env.DB(t).QueryRow("SELECT head FROM trees").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	h, err := format.ParseHead(raw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// expectFork checks err is a fork refusal naming the tree and both heads.
func expectFork(t *testing.T, what string, err error, tree coffer.TreeID, heads ...*format.Head) {
	t.Helper()
	if !errors.Is(err, client.ErrFork) || !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("%s: %v, want a fork error (ErrFork, ErrRollback)", what, err)
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

func utoa(v uint64) string { return strconv.FormatUint(v, 10) }

func shortHex(b []byte) string { return hex.EncodeToString(b) }

func TestScenario33_ForkDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The server restores an old snapshot under device 1 and lets device 2 commit twice on it:
	// device 1's next listing is at a higher version, but not on its chain.
	t.Run("ancestry", func(t *testing.T) {
		env := testenv.New(t)
		env.Client(t, "alice")
		d1, d2 := device(t, env, "alice", true), device(t, env, "alice", false)
		for _, d := range []*client.Client{d1, d2} {
			if _, err := d.List(ctx, "/"); err != nil {
				t.Fatal(err)
			}
		}
		snap := snapshotStore(t, env)
		if _, err := d1.Mkdir(ctx, "/A", false); err != nil {
			t.Fatal(err)
		}
		a := headOf(t, env, d1)
		restoreStore(t, env, snap)
		for _, p := range []string{"/B1", "/B2"} {
			if _, err := d2.Mkdir(ctx, p, false); err != nil {
				t.Fatal(err)
			}
		}
		b2 := headOf(t, env, d2)
		if b2.Version != a.Version+1 {
			t.Fatalf("versions: A %d, B2 %d", a.Version, b2.Version)
		}
		_, err := d1.List(ctx, "/")
		expectFork(t, "device 1 list", err, a.Tree, a, b2)
		// Writes are refused by this client, and after a restart with its state directory, even
		// when the server goes back to device 1's branch.
		_, err = d1.Mkdir(ctx, "/C", false)
		expectFork(t, "device 1 mkdir", err, a.Tree)
	})

	// The consistent fork: device 1 is kept on branch A (its listings replayed, the current head
	// in its head exchanges rewritten), device 2 sees branch B. Each device's own view is
	// consistent; they detect the fork when they exchange heads through the server.
	t.Run("gossip", func(t *testing.T) {
		env := testenv.New(t)
		env.Client(t, "alice")
		st1 := t.TempDir()
		cfg1 := env.Config(st1)
		cfg1.GossipEvery = -1 // only explicit exchanges: the test decides when heads meet
		d1, err := client.Login(ctx, cfg1, "alice", testenv.Password("alice"), "laptop")
		if err != nil {
			t.Fatal(err)
		}
		cfg2 := env.Config(t.TempDir())
		cfg2.Server, cfg2.GossipEvery = env.URL, -1
		d2, err := client.Login(ctx, cfg2, "alice", testenv.Password("alice"), "desktop")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []*client.Client{d1, d2} {
			if _, err := d.CheckHeads(ctx); err != nil {
				t.Fatal(err)
			}
		}
		snap := snapshotStore(t, env)
		if _, err := d1.Mkdir(ctx, "/A", false); err != nil {
			t.Fatal(err)
		}
		a := headOf(t, env, d1)
		keep := &branchKeeper{}
		env.SetHook(keep.record)
		if _, err := d1.List(ctx, "/"); err != nil {
			t.Fatal(err)
		}
		env.SetHook(nil)
		restoreStore(t, env, snap)
		for _, p := range []string{"/B1", "/B2"} {
			if _, err := d2.Mkdir(ctx, p, false); err != nil {
				t.Fatal(err)
			}
		}
		b2 := headOf(t, env, d2)
		// Device 2 publishes B2; device 1's last publication is the common ancestor: no alarm.
		if _, err := d2.CheckHeads(ctx); err != nil {
			t.Fatalf("device 2 before device 1 published its branch: %v", err)
		}
		env.SetHook(keep.replay)
		if es, err := d1.List(ctx, "/"); err != nil || len(es) != 1 || es[0].Name != "A" {
			t.Fatalf("device 1 on its branch: %v %v", es, err)
		}
		_, err = d1.CheckHeads(ctx)
		expectFork(t, "device 1 exchange", err, a.Tree, a, b2)
		_, err = d2.CheckHeads(ctx)
		expectFork(t, "device 2 exchange", err, a.Tree, a, b2)
		// Both refuse to write until resolved; reads of their own branch still work.
		_, err = d1.Mkdir(ctx, "/C", false)
		expectFork(t, "device 1 mkdir", err, a.Tree)
		_, err = d2.Mkdir(ctx, "/C", false)
		expectFork(t, "device 2 mkdir", err, a.Tree)
		if _, err := d2.List(ctx, "/"); err != nil {
			t.Fatalf("device 2 read after the fork: %v", err)
		}
		// The fork is persisted: a restarted device 1 still refuses to write.
		env.SetHook(nil)
		r1, err := client.Resume(ctx, cfg1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r1.Mkdir(ctx, "/C", false)
		expectFork(t, "restarted device 1 mkdir", err, a.Tree)
		// Resolution: device 1 accepts the server's history (branch B), device 2 then too.
		if err := r1.ResolveFork(ctx); err != nil {
			t.Fatalf("device 1 resolve: %v", err)
		}
		if _, err := r1.Mkdir(ctx, "/C", false); err != nil {
			t.Fatalf("device 1 write after resolving: %v", err)
		}
		if err := d2.ResolveFork(ctx); err != nil {
			t.Fatalf("device 2 resolve: %v", err)
		}
		if _, err := d2.Mkdir(ctx, "/D", false); err != nil {
			t.Fatalf("device 2 write after resolving: %v", err)
		}
		if _, err := r1.CheckHeads(ctx); err != nil {
			t.Fatalf("device 1 after both resolved: %v", err)
		}
	})

	// The same with two CLI processes (the real binary, one state directory each): every
	// process exchanges heads at its first listing.
	t.Run("cli", func(t *testing.T) {
		bin := cofferBin(t)
		env := testenv.New(t)
		// The CLI enforces the production KDF minimum: sign up with the default parameters.
		cfg := env.Config(t.TempDir())
		cfg.KDF, cfg.MinKDF = format.KDFParams{}, format.KDFParams{}
		if _, err := client.Signup(ctx, cfg, client.SignupOptions{Username: "alice", Password: testenv.Password("alice")}); err != nil {
			t.Fatal(err)
		}
		run := func(state, server string, args ...string) (string, int) {
			t.Helper()
			cmd := exec.Command(bin, append([]string{"--server", server}, args...)...)
			cmd.Env = append(os.Environ(), "COFFER_CONFIG_DIR="+state, "COFFER_PASSWORD="+string(testenv.Password("alice")))
			out, err := cmd.CombinedOutput()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			return string(out), code
		}
		must := func(out string, code int) string {
			t.Helper()
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			return out
		}
		s1, s2 := t.TempDir(), t.TempDir()
		must(run(s1, env.ProxyURL, "login", "alice"))
		must(run(s2, env.URL, "login", "alice"))
		must(run(s1, env.ProxyURL, "ls", "/"))
		must(run(s2, env.URL, "ls", "/"))
		snap := snapshotStore(t, env)
		must(run(s1, env.ProxyURL, "mkdir", "/A"))
		keep := &branchKeeper{}
		env.SetHook(keep.record)
		must(run(s1, env.ProxyURL, "ls", "/"))
		env.SetHook(nil)
		restoreStore(t, env, snap)
		must(run(s2, env.URL, "mkdir", "/B1"))
		must(run(s2, env.URL, "mkdir", "/B2"))
		b2 := headOf(t, env, nil)
		must(run(s2, env.URL, "ls", "/"))
		env.SetHook(keep.replay)
		out, code := run(s1, env.ProxyURL, "ls", "/")
		if code != 6 || !strings.Contains(out, "fork detected") {
			t.Fatalf("device 1: exit %d: %s", code, out)
		}
		out, code = run(s2, env.URL, "ls", "/")
		if code != 6 || !strings.Contains(out, "fork detected") {
			t.Fatalf("device 2: exit %d: %s", code, out)
		}
		out, code = run(s2, env.URL, "mkdir", "/C")
		if code != 6 || !strings.Contains(out, "fork detected") {
			t.Fatalf("device 2 write after the fork: exit %d: %s", code, out)
		}
		must(run(s2, env.URL, "ls", "/")) // reads of its own branch continue
		out, code = run(s2, env.URL, "heads")
		if code != 6 || !strings.Contains(out, "fork detected") {
			t.Fatalf("device 2 heads after the fork: exit %d: %s", code, out)
		}
		// Resolution: device 1 first (it stops publishing its branch), then device 2.
		env.SetHook(nil)
		must(run(s1, env.ProxyURL, "heads", "--resolve-fork"))
		must(run(s2, env.URL, "heads", "--resolve-fork"))
		must(run(s2, env.URL, "mkdir", "/C"))
		out = must(run(s1, env.ProxyURL, "heads"))
		if !strings.Contains(out, "head:  v"+utoa(b2.Version+1)+" ") {
			t.Fatalf("device 1 heads after both resolved:\n%s", out)
		}
	})
}

func TestScenario34_FreezeDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.New(t)
	env.Client(t, "alice")
	cfg1 := env.Config(t.TempDir())
	cfg1.GossipEvery = -1
	d1, err := client.Login(ctx, cfg1, "alice", testenv.Password("alice"), "laptop")
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := env.Config(t.TempDir())
	cfg2.Server, cfg2.GossipEvery = env.URL, -1
	d2, err := client.Login(ctx, cfg2, "alice", testenv.Password("alice"), "desktop")
	if err != nil {
		t.Fatal(err)
	}
	// Device 1 records the state it will be frozen at.
	keep := &branchKeeper{}
	env.SetHook(keep.record)
	if _, err := d1.CheckHeads(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.List(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	env.SetHook(nil)
	frozen := headOf(t, env, d1)
	// Device 2 moves on twice and publishes.
	for _, p := range []string{"/new1", "/new2"} {
		if _, err := d2.Mkdir(ctx, p, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d2.CheckHeads(ctx); err != nil {
		t.Fatal(err)
	}
	newer := headOf(t, env, d2)
	// The server freezes device 1: old listings, the old head as current.
	env.SetHook(keep.replay)
	if es, err := d1.List(ctx, "/"); err != nil || len(es) != 0 {
		t.Fatalf("frozen listing before the exchange: %v %v", es, err)
	}
	_, err = d1.CheckHeads(ctx)
	if !errors.Is(err, client.ErrFreeze) || !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("exchange while frozen: %v, want ErrFreeze", err)
	}
	for _, h := range []*format.Head{frozen, newer} {
		hh := h.Hash()
		if !strings.Contains(err.Error(), "v"+utoa(h.Version)+" ("+shortHex(hh[:8])+")") {
			t.Errorf("freeze error %q does not name head v%d", err, h.Version)
		}
	}
	// The published head extends device 1's chain, so device 1 now remembers it: the frozen
	// state is refused as a rollback from now on, and the real state is accepted.
	expectListRefused(t, d1, "/", coffer.ErrRollback)
	env.SetHook(nil)
	if es, err := d1.List(ctx, "/"); err != nil || len(es) != 2 {
		t.Fatalf("after the freeze ends: %v %v", es, err)
	}
	if _, err := d1.Mkdir(ctx, "/mine", false); err != nil {
		t.Fatalf("a freeze is not a fork: writes continue: %v", err)
	}

	// Heads withheld as well: device 2 moves on again; the server answers no heads to device 1.
	env.SetHook(keep.record)
	if _, err := d1.List(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	env.SetHook(nil)
	for _, p := range []string{"/new3", "/new4"} {
		if _, err := d2.Mkdir(ctx, p, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d2.CheckHeads(ctx); err != nil {
		t.Fatal(err)
	}
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/heads") {
			testenv.ReplaceBody(resp, nil)
			return nil
		}
		return keep.replay(req, resp)
	})
	_, err = d1.CheckHeads(ctx)
	if !errors.Is(err, client.ErrFreeze) {
		t.Fatalf("exchange while frozen, heads withheld: %v, want ErrFreeze", err)
	}
	env.SetHook(nil)
}
