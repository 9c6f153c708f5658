package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// recorder collects latency samples and error counts per (phase, operation). It is safe for
// concurrent use. Samples are kept in full: a 20 s run at a few thousand operations per second is
// well under a million durations.
type recorder struct {
	mu     sync.Mutex
	ops    map[string]*opStats // key: phase + "\x00" + op
	order  []string            // keys in first-seen order within a phase
	phases map[string]time.Duration
	errs   map[string]int // distinct error messages (first seen), for the stderr summary
}

type opStats struct {
	phase, op string
	durs      []time.Duration
	errors    int
}

func newRecorder() *recorder {
	return &recorder{ops: map[string]*opStats{}, phases: map[string]time.Duration{}, errs: map[string]int{}}
}

func (r *recorder) get(phase, op string) *opStats {
	k := phase + "\x00" + op
	s := r.ops[k]
	if s == nil {
		s = &opStats{phase: phase, op: op}
		r.ops[k] = s
		r.order = append(r.order, k)
	}
	return s
}

// ok records one successful operation that took d.
func (r *recorder) ok(phase, op string, d time.Duration) {
	r.mu.Lock()
	s := r.get(phase, op)
	s.durs = append(s.durs, d)
	r.mu.Unlock()
}

// fail records one failed operation. err's message is kept (truncated) for the error summary;
// client errors name routes and sentinel errors, never keys, tokens or passwords.
func (r *recorder) fail(phase, op string, err error) {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	r.mu.Lock()
	r.get(phase, op).errors++
	r.errs[op+": "+msg]++
	r.mu.Unlock()
}

// setPhase records how long a phase lasted (the denominator of its throughputs).
func (r *recorder) setPhase(phase string, d time.Duration) {
	r.mu.Lock()
	r.phases[phase] = d
	r.mu.Unlock()
}

// summary is one table row.
type summary struct {
	phase, op     string
	count, errors int
	perSec        float64
	p50, p99, max time.Duration
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1)*p + 0.5)
	return sorted[i]
}

// rows summarises every operation, in phase order then first-seen order.
func (r *recorder) rows(phaseOrder []string) []summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	rank := map[string]int{}
	for i, p := range phaseOrder {
		rank[p] = i
	}
	keys := slices.Clone(r.order)
	sort.SliceStable(keys, func(i, j int) bool {
		return rank[r.ops[keys[i]].phase] < rank[r.ops[keys[j]].phase]
	})
	var out []summary
	for _, k := range keys {
		s := r.ops[k]
		d := slices.Clone(s.durs)
		slices.Sort(d)
		row := summary{phase: s.phase, op: s.op, count: len(d), errors: s.errors}
		if el := r.phases[s.phase]; el > 0 {
			row.perSec = float64(len(d)) / el.Seconds()
		}
		row.p50, row.p99 = percentile(d, 0.50), percentile(d, 0.99)
		if len(d) > 0 {
			row.max = d[len(d)-1]
		}
		out = append(out, row)
	}
	return out
}

// find returns the row of (phase, op), or a zero row.
func find(rows []summary, phase, op string) summary {
	for _, r := range rows {
		if r.phase == phase && r.op == op {
			return r
		}
	}
	return summary{phase: phase, op: op}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

// writeTable prints rows as a Markdown table.
func writeTable(w io.Writer, rows []summary) {
	fmt.Fprintln(w, "| phase | operation | ok | errors | per s | p50 ms | p99 ms | max ms |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %s | %s | %s |\n",
			r.phase, r.op, r.count, r.errors, r.perSec, ms(r.p50), ms(r.p99), ms(r.max))
	}
}

// errorSummary returns the distinct errors, most frequent first (at most n).
func (r *recorder) errorSummary(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range r.errs {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var out []string
	for i, e := range all {
		if i == n {
			break
		}
		out = append(out, fmt.Sprintf("%d× %s", e.v, strings.ReplaceAll(e.k, "\n", " ")))
	}
	return out
}
