package client_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"coffer"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// cpuTime is this process's user+system CPU time.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestAncestryAcrossManyHeads: a device that was away while another made more commits than one
// heads answer holds checks the whole chain (in batches) before it accepts the new head, refuses
// a chain with a broken link, and reports the cost. COFFER_FORK_GAP sets the number of commits
// (then in batches of the server's 1,000; default 150 commits in batches of 64).
func TestAncestryAcrossManyHeads(t *testing.T) {
	ctx := context.Background()
	gap, batch := 150, 64 // 151 heads: 3 requests of at most 64
	if s := os.Getenv("COFFER_FORK_GAP"); s != "" {
		gap, _ = strconv.Atoi(s)
		batch = 1000 // the server's api.MaxHeads
	}

	env := testenv.New(t)
	env.Client(t, "alice")
	login := func(proxied bool) *client.Client {
		cfg := env.Config(t.TempDir())
		cfg.GossipEvery = -1
		if !proxied {
			cfg.Server = env.URL
		}
		c, err := client.Login(ctx, cfg, "alice", testenv.Password("alice"), "d")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.List(ctx, "/"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	away, tampered, writer := login(true), login(true), login(false)
	client.SetHeadsBatch(away, uint64(batch))
	client.SetHeadsBatch(tampered, uint64(batch))
	start := time.Now()
	for i := 0; i < gap; i++ {
		if _, err := writer.Mkdir(ctx, "/f"+strconv.Itoa(i), false); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d commits in %v", gap, time.Since(start))

	// A server that breaks one link of the chain (the middle head's prev) is refused.
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if !strings.HasSuffix(req.URL.Path, "/heads") || resp.StatusCode != 200 {
			return nil
		}
		b, _ := testenv.ReadBody(resp)
		if n := len(b) / format.HeadLen; n > 0 {
			b[(n/2)*format.HeadLen+40] ^= 1 // inside prev
		}
		testenv.ReplaceBody(resp, b)
		return nil
	})
	if _, err := tampered.List(ctx, "/"); !errors.Is(err, client.ErrFork) {
		t.Fatalf("broken chain: %v, want ErrFork", err)
	}
	// A server that withholds heads is refused too (and that is no fork).
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/heads") {
			testenv.ReplaceBody(resp, nil)
		}
		return nil
	})
	away2 := login(true)
	if _, err := writer.Mkdir(ctx, "/g", false); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Mkdir(ctx, "/h", false); err != nil {
		t.Fatal(err)
	}
	if _, err := away2.List(ctx, "/"); !errors.Is(err, coffer.ErrAuth) || errors.Is(err, client.ErrFork) {
		t.Fatalf("withheld heads: %v, want ErrAuth", err)
	}

	// The honest catch-up, measured against the same listing by a device without a remembered
	// head (no ancestry check): the difference is the check's cost.
	var heads, bytes atomic.Int64
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/heads") {
			heads.Add(1)
			b, _ := testenv.ReadBody(resp)
			bytes.Add(int64(len(b)))
		}
		return nil
	})
	measure := func(c *client.Client) (time.Duration, time.Duration, uint64, uint64) {
		t.Helper()
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		cpu0, wall0 := cpuTime(t), time.Now()
		es, err := c.List(ctx, "/")
		wall, cpu := time.Since(wall0), cpuTime(t)-cpu0
		runtime.ReadMemStats(&ms1)
		if err != nil || len(es) != gap+2 {
			t.Fatalf("list: %d entries, %v", len(es), err)
		}
		return wall, cpu, ms1.Mallocs - ms0.Mallocs, (ms1.TotalAlloc - ms0.TotalAlloc) >> 10
	}
	cfg := env.Config("")
	cfg.GossipEvery = -1
	fresh, err := client.Login(ctx, cfg, "alice", testenv.Password("alice"), "d")
	if err != nil {
		t.Fatal(err)
	}
	fw, fc, fa, fk := measure(fresh)
	aw, ac, aa, ak := measure(away)
	if want := int64((gap + 1 + batch - 1) / batch); heads.Load() != want {
		t.Errorf("%d heads requests, want %d", heads.Load(), want)
	}
	t.Logf("listing %d entries without a remembered head: wall %v, CPU %v, %d allocs, %d KiB", gap+2, fw, fc, fa, fk)
	t.Logf("same after %d commits away (ancestry over %d heads, %d requests, %d bytes): wall %v, CPU %v, %d allocs, %d KiB",
		gap+2, gap+1, heads.Load(), bytes.Load(), aw, ac, aa, ak)
	t.Logf("(CPU and allocations are the test process's: client and server)")
	// Once caught up, the next moves cost no heads request (consecutive heads chain directly).
	if _, err := writer.Mkdir(ctx, "/i", false); err != nil {
		t.Fatal(err)
	}
	heads.Store(0)
	if _, err := away.List(ctx, "/"); err != nil || heads.Load() != 0 {
		t.Fatalf("next move: %v, %d heads requests", err, heads.Load())
	}
	env.SetHook(nil)
}
