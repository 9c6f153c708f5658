package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
)

// cheapKDF are Argon2id parameters that make the client's password hashing negligible (1 pass,
// 64 KiB), like testenv.CheapKDF: the benchmark measures the server, not Argon2id. The server
// does not enforce KDF minimums; the client's minimum is lowered to match.
func cheapKDF() format.KDFParams { return format.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1} }

// timingTransport times every API request by route and remembers the session token and the
// completion time of every commit, per simulated client.
type timingTransport struct {
	base  http.RoundTripper
	rec   *recorder
	phase *atomic.Value // current phase name (string)
	sim   *simClient
}

// route maps a request to a pattern without IDs, e.g. "POST /v1/trees/{id}/commit".
func route(r *http.Request) string {
	parts := strings.Split(r.URL.Path, "/")
	for i, p := range parts {
		if len(p) >= 16 && !strings.Contains(p, ".") {
			parts[i] = "{id}"
		}
	}
	return r.Method + " " + strings.Join(parts, "/")
}

func (t *timingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if a := r.Header.Get("Authorization"); a != "" {
		t.sim.setToken(strings.TrimPrefix(a, "Bearer "))
	}
	phase := t.phase.Load().(string)
	op := "http " + route(r)
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		if r.Context().Err() == nil { // the phase's end interrupting a request is not a failure
			t.rec.fail(phase, op, err)
		}
		return nil, err
	}
	isCommit := r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/commit")
	if isCommit && resp.StatusCode == http.StatusOK {
		// Read the small JSON answer here, so the time covers the whole response and the
		// commit's seq is known for the change-stream latency.
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		done := time.Now()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if rerr != nil {
			if r.Context().Err() == nil {
				t.rec.fail(phase, op, rerr)
			}
			return resp, nil
		}
		var cr api.CommitResponse
		if json.Unmarshal(body, &cr) == nil && cr.Seq > 0 {
			t.sim.committed(cr.Seq, done)
		}
		t.rec.ok(phase, op, done.Sub(start))
		return resp, nil
	}
	if resp.StatusCode >= 400 {
		t.rec.fail(phase, op, fmt.Errorf("HTTP %d", resp.StatusCode))
	} else {
		t.rec.ok(phase, op, time.Since(start))
	}
	return resp, nil
}

// simClient is one simulated account.
type simClient struct {
	idx      int
	username string
	password []byte
	apiURL   string // node for API calls
	watchURL string // node for the change stream
	cfg      client.Config
	c        *client.Client

	mu      sync.Mutex
	token   string
	commits map[coffer.Seq]time.Time // commit response times not yet matched with an event
	events  map[coffer.Seq]time.Time // events that arrived before their commit response
	small   []int                    // names (numbers) of the small-file puts done (files or folders)
	next    int                      // number of the next small-file put (one interrupted by a phase's end is not retried under its name)
	// onLatency records a change-stream delivery latency (called with mu held).
	onLatency func(time.Duration)
}

func (s *simClient) setToken(tok string) {
	s.mu.Lock()
	if s.token == "" {
		s.token = tok // the first session (sign-up) is the one the stream uses
	}
	s.mu.Unlock()
}

func (s *simClient) getToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// committed notes a commit's response time; if its event already arrived, the delivery latency
// is recorded as zero (the event beat the response).
func (s *simClient) committed(seq coffer.Seq, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev, ok := s.events[seq]; ok {
		delete(s.events, seq)
		s.onLatency(max(ev.Sub(at), 0))
		return
	}
	s.commits[seq] = at
}

// runner holds what every simulated client shares.
type runner struct {
	cfg    config
	rec    *recorder
	phase  atomic.Value
	base   *http.Transport
	local  struct{ small, medium string }
	tokens chan struct{} // paced phase: one token per small-file put
	pace   float64       // small-file puts per second in the current phase (0: closed loop)
}

// pacer hands out pace tokens per second until ctx ends. A token nobody takes is not saved up
// beyond one, so the offered rate never exceeds pace.
func (r *runner) pacer(ctx context.Context, pace float64) {
	t := time.NewTicker(time.Duration(float64(time.Second) / pace))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			select {
			case r.tokens <- struct{}{}:
			default:
			}
		}
	}
}

func (r *runner) newSim(idx int, runID string, nodes []*node) *simClient {
	s := &simClient{
		idx:      idx,
		username: fmt.Sprintf("load%sc%d", runID, idx),
		password: []byte("load test password " + runID),
		apiURL:   nodes[idx%len(nodes)].url,
		watchURL: nodes[(idx+1)%len(nodes)].url,
		commits:  map[coffer.Seq]time.Time{},
		events:   map[coffer.Seq]time.Time{},
	}
	s.onLatency = func(d time.Duration) { r.rec.ok(r.phase.Load().(string), "change stream delivery", d) }
	tt := &timingTransport{base: r.base, rec: r.rec, phase: &r.phase, sim: s}
	s.cfg = client.Config{
		Server:     s.apiURL,
		HTTPClient: &http.Client{Transport: tt},
		KDF:        cheapKDF(),
		MinKDF:     cheapKDF(),
		Parallel:   2,
	}
	return s
}

// putOp names the small-file put operation.
func (r *runner) putOp() string {
	if r.cfg.smallBatch > 1 {
		return fmt.Sprintf("put folder of %d small", r.cfg.smallBatch)
	}
	return "put small"
}

// timed runs fn and records it under op in the current phase. An error caused by ctx ending
// (the end of the phase) is not counted as a failure.
func (r *runner) timed(ctx context.Context, op string, fn func() error) error {
	phase := r.phase.Load().(string)
	start := time.Now()
	err := fn()
	if err != nil {
		if ctx.Err() == nil {
			r.rec.fail(phase, op, err)
		}
		return err
	}
	r.rec.ok(phase, op, time.Since(start))
	return nil
}

// watch reads the change stream of s until ctx ends, matching events with commits. It sends one
// value on ready: nil once the stream is live, or why it could not be opened.
func (r *runner) watch(ctx context.Context, s *simClient, ready chan<- error) {
	sent := false
	signal := func(err error) {
		if !sent {
			sent = true
			ready <- err
		}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", s.watchURL+"/v1/changes/stream", nil)
	if err != nil {
		signal(err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.getToken())
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		signal(fmt.Errorf("change stream: %w", err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		signal(fmt.Errorf("change stream: HTTP %d", resp.StatusCode))
		return
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ":") {
			signal(nil) // the server's first comment: the stream is live
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		at := time.Now()
		var ev api.ChangeEvent
		if json.Unmarshal([]byte(data), &ev) != nil {
			continue
		}
		s.mu.Lock()
		if c, ok := s.commits[ev.Seq]; ok {
			delete(s.commits, ev.Seq)
			s.onLatency(at.Sub(c))
		} else {
			s.events[ev.Seq] = at
		}
		s.mu.Unlock()
	}
	signal(fmt.Errorf("change stream ended: %v", sc.Err()))
}

// signup creates the account and logs it in.
func (r *runner) signup(ctx context.Context, s *simClient) error {
	err := r.timed(ctx, "signup", func() error {
		c, err := client.Signup(ctx, s.cfg, client.SignupOptions{
			Username: s.username, Password: s.password, Device: "load"})
		if err != nil {
			return err
		}
		s.c = c
		return nil
	})
	if err != nil {
		return err
	}
	// One authenticated request, so the transport sees the session token the stream will use.
	if _, err := s.c.Usage(ctx); err != nil {
		r.rec.fail("signup", "usage", err)
		return err
	}
	return nil
}

// loginLoop logs s in again and again until ctx ends. Each login is a new session that is
// simply abandoned (it expires on the server).
func (r *runner) loginLoop(ctx context.Context, s *simClient) {
	for ctx.Err() == nil {
		err := r.timed(ctx, "login", func() error {
			_, err := client.Login(ctx, s.cfg, s.username, s.password, "load")
			return err
		})
		if err != nil && ctx.Err() != nil {
			return
		}
	}
}

// mixedLoop is the steady-state workload: a small-file put every turn, and every few turns a
// listing, a small download, a medium upload or a medium download.
func (r *runner) mixedLoop(ctx context.Context, s *simClient) {
	rng := rand.New(rand.NewPCG(uint64(s.idx), 42))
	medium := 0
	batch := max(r.cfg.smallBatch, 1)
	smallPath := func(i int) string {
		if batch == 1 {
			return fmt.Sprintf("/s-%06d", i)
		}
		return fmt.Sprintf("/b-%06d/f-%04d", i, rng.IntN(batch))
	}
	for k := 0; ctx.Err() == nil; k++ {
		if r.cfg.smallPerClient > 0 && len(s.small)*batch >= r.cfg.smallPerClient {
			return
		}
		if r.pace > 0 {
			select {
			case <-r.tokens:
			case <-ctx.Done():
				return
			}
		}
		i := s.next
		s.next++
		remote := fmt.Sprintf("/s-%06d", i)
		if batch > 1 {
			remote = fmt.Sprintf("/b-%06d", i)
		}
		err := r.timed(ctx, r.putOp(), func() error {
			_, err := s.c.Upload(ctx, []string{r.local.small}, remote, client.TransferOptions{})
			return err
		})
		if err == nil {
			s.small = append(s.small, i)
		} else if ctx.Err() != nil {
			return
		}
		switch {
		case k%5 == 4:
			_ = r.timed(ctx, "list /", func() error {
				_, err := s.c.List(ctx, "/")
				return err
			})
		case k%5 == 2 && len(s.small) > 0:
			p := smallPath(s.small[rng.IntN(len(s.small))])
			_ = r.timed(ctx, "download small", func() error { return s.c.Cat(ctx, p, io.Discard) })
		}
		// Medium files: spread over the clients' first turns (not all at once), then every 25.
		switch off := s.idx % 5; {
		case k%25 == off && r.cfg.mediumSize > 0:
			p := fmt.Sprintf("/m-%03d", medium)
			if r.timed(ctx, "put medium", func() error {
				_, err := s.c.Upload(ctx, []string{r.local.medium}, p, client.TransferOptions{})
				return err
			}) == nil {
				medium++
			}
		case k%25 == off+7 && medium > 0:
			p := fmt.Sprintf("/m-%03d", rng.IntN(medium))
			_ = r.timed(ctx, "download medium", func() error { return s.c.Cat(ctx, p, io.Discard) })
		}
	}
}
