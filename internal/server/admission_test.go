package server

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestAdmissionOrder: with every slot of a class taken, its requests wait first come first served;
// a full queue refuses at once; a waiter whose context ends leaves the queue.
func TestAdmissionOrder(t *testing.T) {
	a := newAdmission(2, 3)
	ctx := context.Background()
	for range 2 {
		if !a.acquire(ctx, prioNormal) {
			t.Fatal("free slot refused")
		}
	}
	order := make(chan string, 3)
	queued := 0
	start := func(name string, prio int) {
		go func() {
			if a.acquire(ctx, prio) {
				order <- name
			}
		}()
		queued++
		waitQueued(t, a, queued, name)
	}
	start("normal-1", prioNormal)
	start("normal-2", prioNormal)
	start("normal-3", prioNormal)
	// The queue is full: refused at once. A commit, with a slot of its own free, needs no place
	// in the queue.
	if a.acquire(ctx, prioNormal) {
		t.Fatal("acquire past the queue bound succeeded")
	}
	if !a.acquire(ctx, prioCommit) {
		t.Fatal("commit refused although a commit slot was free")
	}
	a.release(prioCommit)
	for _, want := range []string{"normal-1", "normal-2", "normal-3"} {
		a.release(prioNormal)
		select {
		case got := <-order:
			if got != want {
				t.Fatalf("admitted %s; want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not admitted after a release", want)
		}
	}
	if r, q := a.stats(); r != 2 || q != 0 {
		t.Fatalf("running %d, queued %d; want 2, 0", r, q)
	}
	// A waiter that gives up leaves the queue and takes no slot.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan bool)
	go func() { done <- a.acquire(cctx, prioNormal) }()
	waitQueued(t, a, 1, "cancelled")
	cancel()
	if <-done {
		t.Fatal("cancelled acquire succeeded")
	}
	a.release(prioNormal)
	a.release(prioNormal)
	if r, q := a.stats(); r != 0 || q != 0 {
		t.Fatalf("after releasing everything: running %d, queued %d", r, q)
	}
}

// waitQueued waits until want requests wait for admission.
func waitQueued(t *testing.T, a *admission, want int, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, q := a.stats(); q == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never queued", name)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAdmissionHTTP: over HTTP, a request beyond the running limit and the queue bound is answered
// 503 with Retry-After, while change streams and health checks are never held back.
func TestAdmissionHTTP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxActive, c.MaxQueued = 1, 1 })
	u := e.signup("dave")
	// Take the only slot and the only queue place from outside HTTP.
	if !e.srv.admit.acquire(context.Background(), prioNormal) {
		t.Fatal("slot refused")
	}
	queued := make(chan bool)
	go func() { queued <- e.srv.admit.acquire(context.Background(), prioNormal) }()
	waitQueued(t, e.srv.admit, 1, "filler")
	resp := e.request("GET", "/v1/usage", u.token, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("over the bound: %d Retry-After %q; want 503 with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := e.request("GET", "/healthz", "", nil); resp.StatusCode != 200 {
		t.Fatalf("healthz while saturated: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	e.srv.admit.release(prioNormal) // the filler gets the slot
	if !<-queued {
		t.Fatal("filler not admitted")
	}
	e.srv.admit.release(prioNormal)
	if st, ae := e.call("GET", "/v1/usage", u.token, nil, nil); st != 200 {
		t.Fatalf("after the load: %d %+v", st, ae)
	}
	if requestPriority(mustRequest(t, "POST", "/v1/trees/x/commit")) != prioCommit ||
		requestPriority(mustRequest(t, "GET", "/v1/changes/stream")) != -1 ||
		requestPriority(mustRequest(t, "POST", "/v1/trees/x/blobs")) != prioNormal {
		t.Fatal("request classes")
	}
}

func mustRequest(t *testing.T, method, path string) *http.Request {
	r, err := http.NewRequest(method, "http://127.0.0.1"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAdmissionCommitSlots: commits have slots of their own. With a limit of 4, ordinary requests
// run 3 at once and commits 4 whatever the ordinary requests do; a fifth commit waits for a
// commit to end, not for an ordinary request, and an ordinary request never takes a commit's
// slot.
func TestAdmissionCommitSlots(t *testing.T) {
	a := newAdmission(4, 10)
	ctx := context.Background()
	for range 3 {
		if !a.acquire(ctx, prioNormal) {
			t.Fatal("free slot refused")
		}
	}
	normal := make(chan bool, 1)
	go func() { normal <- a.acquire(ctx, prioNormal) }()
	waitQueued(t, a, 1, "fourth ordinary request")
	for i := range 4 {
		done := make(chan bool, 1)
		go func() { done <- a.acquire(ctx, prioCommit) }()
		select {
		case ok := <-done:
			if !ok {
				t.Fatalf("commit %d refused", i+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("commit %d waited although the ordinary requests hold only their own slots", i+1)
		}
	}
	commit := make(chan bool, 1)
	go func() { commit <- a.acquire(ctx, prioCommit) }()
	waitQueued(t, a, 2, "fifth commit")
	a.release(prioNormal) // the waiting ordinary request starts, not the commit
	select {
	case ok := <-normal:
		if !ok {
			t.Fatal("ordinary request refused")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ordinary request not admitted after an ordinary slot freed")
	}
	select {
	case <-commit:
		t.Fatal("commit admitted into an ordinary slot")
	case <-time.After(50 * time.Millisecond):
	}
	a.release(prioCommit)
	select {
	case ok := <-commit:
		if !ok {
			t.Fatal("commit refused")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("commit not admitted after a commit ended")
	}
	if r, q := a.stats(); r != 7 || q != 0 {
		t.Fatalf("running %d, queued %d; want 7, 0", r, q)
	}
}
