package server

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"

	"coffer/api"
)

// Admission control. Under overload every request in the process shares the CPU and the store,
// so they all slow down together and the tail latency of the short, critical ones (commits,
// logins) becomes that of the whole backlog. The server therefore runs at most a bounded number
// of API requests at once; the others wait in a bounded queue, served by priority class, first
// come first served within a class; past the queue a request is refused at once with 503 and
// Retry-After (the client retries it). A quarter of the slots is reserved for the first class, so
// a commit does not wait for a slow upload to finish. Change streams (long-lived, idle), health
// and metrics are not counted.
const (
	// DefaultMaxActivePerCPU is the default limit of requests running at once, per CPU.
	DefaultMaxActivePerCPU = 8
	// DefaultMaxQueued is the default bound of requests waiting for admission.
	DefaultMaxQueued = 4096
)

// Priority classes, highest first.
const (
	prioCommit = iota // commits and login completions: short, and what a user waits for
	prioNormal        // everything else: listings, blob transfers, login starts, account calls
	numPrios
)

// requestPriority returns the class of an API request, or -1 if it is not admission-controlled.
func requestPriority(r *http.Request) int {
	p := r.URL.Path
	switch {
	case !strings.HasPrefix(p, "/v1/"):
		return -1 // health, readiness, metrics, 404s
	case p == "/v1/changes/stream":
		return -1
	case r.Method == http.MethodPost && (strings.HasSuffix(p, "/commit") || p == "/v1/login/finish"):
		return prioCommit
	}
	return prioNormal
}

// admission is a counting semaphore with a bounded, prioritised wait queue.
type admission struct {
	limit, maxQueued int
	normalLimit      int // slots that requests below the first class may take

	mu      sync.Mutex
	running int
	queued  int
	waiters [numPrios][]*waiter // FIFO per class
}

type waiter struct {
	ready   chan struct{} // closed when the slot is handed over
	granted bool          // guarded by admission.mu
}

func newAdmission(limit, maxQueued int) *admission {
	if limit <= 0 {
		limit = DefaultMaxActivePerCPU * runtime.GOMAXPROCS(0)
	}
	if maxQueued <= 0 {
		maxQueued = DefaultMaxQueued
	}
	return &admission{limit: limit, maxQueued: maxQueued, normalLimit: max(limit-limit/4, 1)}
}

// fits reports whether a request of class prio may take a slot now.
func (a *admission) fits(prio int) bool {
	if prio == prioCommit {
		return a.running < a.limit
	}
	return a.running < a.normalLimit
}

// acquire waits for a slot of class prio. It returns false if the queue is full or ctx ended
// first; otherwise the caller must call release once.
func (a *admission) acquire(ctx context.Context, prio int) bool {
	a.mu.Lock()
	if a.fits(prio) && !a.waitersAtOrAbove(prio) {
		a.running++
		a.mu.Unlock()
		return true
	}
	if a.queued >= a.maxQueued {
		a.mu.Unlock()
		return false
	}
	w := &waiter{ready: make(chan struct{})}
	a.waiters[prio] = append(a.waiters[prio], w)
	a.queued++
	a.mu.Unlock()
	select {
	case <-w.ready:
		return true
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.granted { // the slot arrived as ctx ended: pass it on
		a.running--
		a.grantLocked()
		return false
	}
	q := a.waiters[prio]
	for i, x := range q {
		if x == w {
			a.waiters[prio] = append(q[:i:i], q[i+1:]...)
			a.queued--
			break
		}
	}
	return false
}

// waitersAtOrAbove reports whether a request of class prio or a higher one is waiting.
func (a *admission) waitersAtOrAbove(prio int) bool {
	for p := 0; p <= prio; p++ {
		if len(a.waiters[p]) > 0 {
			return true
		}
	}
	return false
}

// release frees a slot and hands free slots to the first waiters of the highest classes.
func (a *admission) release() {
	a.mu.Lock()
	a.running--
	a.grantLocked()
	a.mu.Unlock()
}

func (a *admission) grantLocked() {
	for p := range a.waiters {
		for len(a.waiters[p]) > 0 && a.fits(p) {
			q := a.waiters[p]
			w := q[0]
			q[0] = nil
			a.waiters[p] = q[1:]
			a.queued--
			a.running++
			w.granted = true
			close(w.ready)
		}
		if len(a.waiters[p]) > 0 {
			return // lower classes wait behind this one
		}
	}
}

// stats returns the requests running and waiting.
func (a *admission) stats() (running, queued int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running, a.queued
}

// errOverloaded is the answer when the admission queue is full.
var errOverloaded = &apiError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable,
	msg: "server busy: retry", retryAfter: 1}
