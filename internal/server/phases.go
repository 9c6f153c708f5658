package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Commit phase timings: where a commit request's time goes inside the server under load
// (doc/SCALING.md, "Load benchmark"). Recorded only when Config.CommitPhases is set (coffer serve
// does it with --metrics-listen) and served on the private listener at GET /debug/commit-phases;
// never logged. A sample is a duration and a phase name: no request data.

// Commit phases, in the order a commit request passes them.
const (
	phQueue    = iota // waiting for an admission slot
	phAuth            // session check
	phDecode          // reading and parsing the JSON body
	phAccess          // tree head, access check, writer key
	phValidate        // record parsing, rules, state recomputation
	phStore           // the store's transaction (group commit wait and fsync included)
	phPublish         // change notifications
	phRespond         // writing the answer
	numPhases
)

var phaseNames = [numPhases]string{"queue", "auth", "decode", "access", "validate", "store", "publish", "respond"}

// maxPhaseSamples bounds the samples kept between two reads (about 1 MiB).
const maxPhaseSamples = 1 << 14

// commitPhases collects per-phase durations of commit requests.
type commitPhases struct {
	mu      sync.Mutex
	samples [numPhases + 1][]time.Duration // the last one is the whole request
	records []int                          // records per commit
	dropped int
}

// phaseClock times one commit request; nil (phases off) is a valid clock that does nothing.
type phaseClock struct {
	start, last time.Time
	d           [numPhases]time.Duration
	records     int
}

func newPhaseClock(start time.Time) *phaseClock { return &phaseClock{start: start, last: start} }

// mark ends phase p now: the time since the previous mark is added to p.
func (c *phaseClock) mark(p int) {
	if c == nil {
		return
	}
	now := time.Now()
	c.d[p] += now.Sub(c.last)
	c.last = now
}

// phaseClockFrom returns the request's clock (nil if phases are off or it is not a commit).
func phaseClockFrom(ctx context.Context) *phaseClock {
	if info := infoFrom(ctx); info != nil {
		return info.phases
	}
	return nil
}

func (cp *commitPhases) add(c *phaseClock, total time.Duration) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.records) >= maxPhaseSamples {
		cp.dropped++
		return
	}
	for p := range numPhases {
		cp.samples[p] = append(cp.samples[p], c.d[p])
	}
	cp.samples[numPhases] = append(cp.samples[numPhases], total)
	cp.records = append(cp.records, c.records)
}

// report writes a table of the samples since the last reset (p50, p90, p99, max, mean per phase)
// and, with reset, starts over.
func (cp *commitPhases) report(w io.Writer, reset bool) {
	cp.mu.Lock()
	samples := cp.samples
	records, dropped := cp.records, cp.dropped
	if reset {
		cp.samples = [numPhases + 1][]time.Duration{}
		cp.records, cp.dropped = nil, 0
	}
	cp.mu.Unlock()
	n := len(records)
	recs := 0
	for _, r := range records {
		recs += r
	}
	fmt.Fprintf(w, "commits %d (not sampled: %d), records per commit %.1f\n", n, dropped, float64(recs)/float64(max(n, 1)))
	fmt.Fprintf(w, "%-9s %9s %9s %9s %9s %9s %7s\n", "phase", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "share")
	var totalSum time.Duration
	for _, d := range samples[numPhases] {
		totalSum += d
	}
	for p := range numPhases + 1 {
		name := "total"
		if p < numPhases {
			name = phaseNames[p]
		}
		s := slices.Clone(samples[p])
		slices.Sort(s)
		var sum time.Duration
		for _, d := range s {
			sum += d
		}
		q := func(f float64) float64 {
			if len(s) == 0 {
				return 0
			}
			return ms(s[min(int(f*float64(len(s))), len(s)-1)])
		}
		share := 0.0
		if totalSum > 0 {
			share = 100 * float64(sum) / float64(totalSum)
		}
		fmt.Fprintf(w, "%-9s %9.1f %9.1f %9.1f %9.1f %9.2f %6.1f%%\n", name, q(0.5), q(0.9), q(0.99), q(1),
			ms(sum)/float64(max(len(s), 1)), share)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// handleCommitPhases serves the report; ?reset=1 starts a new sample.
func (s *Server) handleCommitPhases(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.phases == nil {
		http.Error(w, "commit phases are off (Config.CommitPhases)", http.StatusNotFound)
		return
	}
	s.phases.report(w, r.URL.Query().Get("reset") == "1")
}

// CommitPhasesHandler serves the commit phase timings (for the private metrics listener).
func (s *Server) CommitPhasesHandler() http.Handler { return http.HandlerFunc(s.handleCommitPhases) }
