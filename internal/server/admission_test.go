package server

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestAdmissionOrder: with every slot taken, waiting commits are admitted before other requests
// that waited longer, first come first served within a class; a full queue refuses at once; a
// waiter whose context ends leaves the queue.
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
	start("commit", prioCommit)
	if _, q := a.stats(); q != 3 {
		t.Fatalf("queued %d; want 3", q)
	}
	// The queue is full: refused at once.
	if a.acquire(ctx, prioCommit) {
		t.Fatal("acquire past the queue bound succeeded")
	}
	for _, want := range []string{"commit", "normal-1", "normal-2"} {
		a.release()
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
	a.release()
	a.release()
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
	e.srv.admit.release() // the filler gets the slot
	if !<-queued {
		t.Fatal("filler not admitted")
	}
	e.srv.admit.release()
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

// TestAdmissionReserve: a quarter of the slots is kept for commits: with the others all taken by
// ordinary requests, a commit still starts at once while the next ordinary request waits.
func TestAdmissionReserve(t *testing.T) {
	a := newAdmission(4, 10)
	ctx := context.Background()
	for range 3 {
		if !a.acquire(ctx, prioNormal) {
			t.Fatal("free slot refused")
		}
	}
	got := make(chan bool, 1)
	go func() { got <- a.acquire(ctx, prioNormal) }()
	waitQueued(t, a, 1, "fourth ordinary request")
	done := make(chan bool, 1)
	go func() { done <- a.acquire(ctx, prioCommit) }()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("commit refused")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("commit waited although a reserved slot was free")
	}
	// An ordinary request ends: 3 run (2 ordinary and the commit), the ordinary limit.
	a.release()
	select {
	case <-got:
		t.Fatal("ordinary request admitted into the reserved slot")
	case <-time.After(50 * time.Millisecond):
	}
	a.release() // the commit ends: the waiting ordinary request may start
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("ordinary request refused")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ordinary request not admitted after a slot freed")
	}
	if r, q := a.stats(); r != 3 || q != 0 {
		t.Fatalf("running %d, queued %d; want 3, 0", r, q)
	}
}
