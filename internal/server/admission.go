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
// of API requests at once; the others wait in a bounded queue, first come first served within a
// class; past the queue a request is refused at once with 503 and Retry-After (the client retries
// it). The first class (commits, login completions) has slots of its own that other requests
// never take, so a commit never waits at admission for uploads or listings to finish, only for
// other commits. Change streams (long-lived, idle), health and metrics are not counted.
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

// admission is a counting semaphore per class with a bounded wait queue. With a limit of L, the
// first class may run L requests at once and the others together L - L/4.
type admission struct {
	limits    [numPrios]int
	maxQueued int

	mu      sync.Mutex
	running [numPrios]int
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
	return &admission{limits: [numPrios]int{prioCommit: limit, prioNormal: max(limit-limit/4, 1)}, maxQueued: maxQueued}
}

// acquire waits for a slot of class prio. It returns false if the queue is full or ctx ended
// first; otherwise the caller must call release(prio) once.
func (a *admission) acquire(ctx context.Context, prio int) bool {
	a.mu.Lock()
	if a.running[prio] < a.limits[prio] && len(a.waiters[prio]) == 0 {
		a.running[prio]++
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
		a.running[prio]--
		a.grantLocked(prio)
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

// release frees a slot of class prio and hands it to the class's first waiter.
func (a *admission) release(prio int) {
	a.mu.Lock()
	a.running[prio]--
	a.grantLocked(prio)
	a.mu.Unlock()
}

func (a *admission) grantLocked(prio int) {
	for len(a.waiters[prio]) > 0 && a.running[prio] < a.limits[prio] {
		q := a.waiters[prio]
		w := q[0]
		q[0] = nil
		a.waiters[prio] = q[1:]
		a.queued--
		a.running[prio]++
		w.granted = true
		close(w.ready)
	}
}

// stats returns the requests running and waiting, all classes together.
func (a *admission) stats() (running, queued int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.running {
		running += n
	}
	return running, a.queued
}

// errOverloaded is the answer when the admission queue is full.
var errOverloaded = &apiError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable,
	msg: "server busy: retry", retryAfter: 1}
