// Command load is Coffer's load benchmark (issue 5): N simulated accounts, each a real
// coffer/client.Client in this process, against 1 or 2 real `coffer serve` processes on loopback.
//
//	go run ./bench/load [-clients 200] [-duration 20s] [-login-duration 5s] [-nodes 1|2]
//	    [-mode embedded|scaleout|both] [-small-batch 50] [-paced-rate 2200] [-small-per-client 0]
//	    [-small-size 4KiB] [-medium-size 1MiB] [-pg DSN] [-s3 http://KEY:SECRET@127.0.0.1:PORT]
//	    [-coffer BIN] [-dir DIR] [-keep] [-phases] [-profile DIR]
//
// Phases, each measured separately and printed as one Markdown table per mode:
//
//  1. signup: every client signs up at once (cheap client-side KDF: the server is measured, not
//     Argon2id);
//  2. login: every client logs in repeatedly for -login-duration;
//  3. mixed (closed loop, the capacity): for -duration every client loops as fast as it can: put
//     a new folder of -small-batch small files (packed blobs, one commit), and every few
//     iterations list "/", download a small file, put or download a medium file. Meanwhile every
//     client watches its change stream (GET /v1/changes/stream; with 2 nodes on the other node
//     than it commits through) and the time from the commit response to the event is recorded;
//  4. paced (the latency at the target rate): the same workload for -duration, but the clients
//     together start at most -paced-rate / -small-batch puts per second (open loop). The commit
//     latency target is checked here: in a closed loop every resource is saturated by design and
//     the latency is the queue that saturation builds (doc/SCALING.md, "Load benchmark").
//
// Every API request is also timed by route (a wrapping http.RoundTripper), so "http POST
// /v1/trees/{id}/commit" is the commit request alone. Peak server RSS is VmHWM of each serve
// process. The embedded mode (SQLite + disk in DIR) always runs one node: SQLite coordination is
// in-process. The scaleout mode needs PostgreSQL and an S3 endpoint: -pg / -s3, defaulting to
// COFFER_TEST_POSTGRES / COFFER_TEST_S3 as exported by `source scripts/pg.sh; source
// scripts/s3.sh`; a fresh bucket is created per run. Only loopback addresses are used.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	clients        int
	duration       time.Duration
	loginDuration  time.Duration
	nodes          int
	mode           string
	smallPerClient int
	smallBatch     int
	smallSize      int64
	mediumSize     int64
	pg, s3         string
	coffer         string
	dir            string
	keep           bool
	profile        string
	phases         bool
	pacedRate      float64
	serveFlags     []string
}

func main() {
	var c config
	var smallS, mediumS string
	flag.IntVar(&c.clients, "clients", 200, "simulated accounts")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "length of the mixed phase")
	flag.DurationVar(&c.loginDuration, "login-duration", 5*time.Second, "length of the login phase (0 skips it)")
	flag.IntVar(&c.nodes, "nodes", 1, "server nodes in scaleout mode (1 or 2)")
	flag.StringVar(&c.mode, "mode", "embedded", "embedded, scaleout or both")
	flag.IntVar(&c.smallPerClient, "small-per-client", 0, "stop a client after this many small files (0: until -duration)")
	flag.IntVar(&c.smallBatch, "small-batch", 50, "small files per put: 1 uploads one file (one blob, one commit); K > 1 uploads a new folder of K files (packed blobs; one commit creates the folder and its files)")
	flag.StringVar(&smallS, "small-size", "4KiB", "size of a small file")
	flag.StringVar(&mediumS, "medium-size", "1MiB", "size of a medium file (0 skips medium files)")
	flag.StringVar(&c.pg, "pg", os.Getenv("COFFER_TEST_POSTGRES"), "scaleout: PostgreSQL DSN (default $COFFER_TEST_POSTGRES)")
	flag.StringVar(&c.s3, "s3", os.Getenv("COFFER_TEST_S3"), "scaleout: S3 endpoint http://KEY:SECRET@127.0.0.1:PORT (default $COFFER_TEST_S3)")
	flag.StringVar(&c.coffer, "coffer", "", "coffer binary to run (default: go build ./cmd/coffer into the work directory)")
	flag.StringVar(&c.dir, "dir", "", "work directory (default: a new folder under /var/tmp, deleted at the end)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (server logs, data)")
	serveFlags := flag.String("serve-flags", "", "extra flags for every `coffer serve`, space-separated (e.g. \"--max-active 16\")")
	flag.StringVar(&c.profile, "profile", "", "write each node's CPU, block and mutex profiles of the mixed phase into this folder (served by a private --metrics-listen)")
	flag.BoolVar(&c.phases, "phases", false, "print where each node's commit requests spent their time in the mixed phase (GET /debug/commit-phases on a private --metrics-listen)")
	flag.Float64Var(&c.pacedRate, "paced-rate", 2200, "small files per second the clients together offer in the paced phase, which follows the closed-loop mixed phase and lasts -duration (0 skips it); the commit latency target is checked there")
	flag.Parse()
	c.serveFlags = strings.Fields(*serveFlags)
	var err error
	if c.smallSize, err = parseSize(smallS); err != nil {
		fatal(fmt.Errorf("-small-size: %w", err))
	}
	if c.mediumSize, err = parseSize(mediumS); err != nil {
		fatal(fmt.Errorf("-medium-size: %w", err))
	}
	if err := c.validate(); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fatal(err)
	}
}

func (c *config) validate() error {
	switch {
	case c.clients < 1 || c.clients > 10000:
		return fmt.Errorf("load: -clients %d: want 1..10000", c.clients)
	case c.duration <= 0:
		return fmt.Errorf("load: -duration %s: want > 0", c.duration)
	case c.loginDuration < 0:
		return fmt.Errorf("load: -login-duration %s: want >= 0", c.loginDuration)
	case c.nodes != 1 && c.nodes != 2:
		return fmt.Errorf("load: -nodes %d: want 1 or 2", c.nodes)
	case c.mode != "embedded" && c.mode != "scaleout" && c.mode != "both":
		return fmt.Errorf("load: -mode %q: want embedded, scaleout or both", c.mode)
	case c.smallBatch < 1 || c.smallBatch > 10000:
		return fmt.Errorf("load: -small-batch %d: want 1..10000", c.smallBatch)
	case c.smallSize < 1:
		return fmt.Errorf("load: -small-size: want at least 1 byte")
	case c.mediumSize < 0:
		return fmt.Errorf("load: -medium-size: want >= 0")
	case c.pacedRate < 0:
		return fmt.Errorf("load: -paced-rate %g: want >= 0", c.pacedRate)
	}
	if c.mode != "embedded" {
		if c.pg == "" || c.s3 == "" {
			return errors.New("load: scaleout needs -pg and -s3 (or run `source scripts/pg.sh; source scripts/s3.sh` first)")
		}
		u, err := url.Parse(c.pg)
		if err != nil || !isLoopback(u.Hostname()) {
			return errors.New("load: -pg must be a postgres:// DSN on a loopback address")
		}
		if _, err := parseS3(c.s3); err != nil {
			return err
		}
	}
	return nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", strings.TrimPrefix(err.Error(), "load: "))
	os.Exit(1)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 4KiB, 1MiB)", s)
	}
	return n * mult, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func run(ctx context.Context, c config, out io.Writer) error {
	dir := c.dir
	if dir == "" {
		d, err := os.MkdirTemp("/var/tmp", "coffer-load-")
		if err != nil {
			return fmt.Errorf("load: work directory: %w", err)
		}
		dir = d
		if !c.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("load: work directory: %w", err)
	}
	bin := c.coffer
	if bin == "" {
		var err error
		if bin, err = buildCoffer(ctx, dir); err != nil {
			return err
		}
	}
	modes := []string{c.mode}
	if c.mode == "both" {
		modes = []string{"embedded", "scaleout"}
	}
	for _, m := range modes {
		if err := runMode(ctx, c, m, bin, dir, out); err != nil {
			return err
		}
	}
	return nil
}

// startNodes starts the server processes of one mode.
func startNodes(ctx context.Context, c config, mode, bin, dir, runID string) ([]*node, string, error) {
	var nodes []*node
	stopAll := func() {
		for _, n := range nodes {
			n.stop()
		}
	}
	if mode == "embedded" {
		data := filepath.Join(dir, "embedded-"+runID)
		n, err := startNode(ctx, bin, append([]string{"--data", data}, c.serveFlags...), nil, filepath.Join(dir, "embedded-"+runID+".log"), c.private())
		if err != nil {
			return nil, "", err
		}
		return []*node{n}, "embedded: SQLite + disk, 1 node", nil
	}
	t, err := parseS3(c.s3)
	if err != nil {
		return nil, "", err
	}
	bucket := "coffer-load-" + runID
	if err := makeBucket(ctx, t, bucket); err != nil {
		return nil, "", err
	}
	blobs := fmt.Sprintf("s3://%s/?endpoint=%s&region=us-east-1&insecure=1", bucket, t.endpoint)
	env := []string{"COFFER_S3_ACCESS_KEY=" + t.access, "COFFER_S3_SECRET_KEY=" + t.secret}
	for i := range c.nodes {
		name := fmt.Sprintf("scaleout-%s-node%d", runID, i+1)
		n, err := startNode(ctx, bin, append([]string{"--data", filepath.Join(dir, name), "--db", c.pg, "--blobs", blobs}, c.serveFlags...),
			env, filepath.Join(dir, name+".log"), c.private())
		if err != nil {
			stopAll()
			return nil, "", err
		}
		nodes = append(nodes, n)
	}
	return nodes, fmt.Sprintf("scaleout: PostgreSQL + S3 (versitygw), %d node(s)", c.nodes), nil
}

func runMode(ctx context.Context, c config, mode, bin, dir string, out io.Writer) error {
	runID := randomHex(4)
	nodes, desc, err := startNodes(ctx, c, mode, bin, dir, runID)
	if err != nil {
		return err
	}
	stopped := false
	stopNodes := func() {
		if !stopped {
			stopped = true
			for _, n := range nodes {
				n.stop()
			}
		}
	}
	defer stopNodes()

	r := &runner{cfg: c, rec: newRecorder(), tokens: make(chan struct{}, 1)}
	r.base = &http.Transport{
		MaxIdleConns:        4*c.clients + 64,
		MaxIdleConnsPerHost: 4*c.clients + 64,
		IdleConnTimeout:     90 * time.Second,
	}
	defer r.base.CloseIdleConnections()
	r.local.small = filepath.Join(dir, "small-"+runID)
	r.local.medium = filepath.Join(dir, "medium-"+runID)
	for _, f := range []struct {
		path string
		size int64
	}{{r.local.small, c.smallSize}, {r.local.medium, c.mediumSize}} {
		b := make([]byte, f.size)
		_, _ = rand.Read(b)
		if err := os.WriteFile(f.path, b, 0o600); err != nil {
			return fmt.Errorf("load: local file: %w", err)
		}
	}
	if c.smallBatch > 1 {
		// A folder of smallBatch distinct small files; r.local.small becomes the folder.
		src := r.local.small
		r.local.small = filepath.Join(dir, "smalldir-"+runID)
		if err := os.MkdirAll(r.local.small, 0o700); err != nil {
			return fmt.Errorf("load: local folder: %w", err)
		}
		for i := range c.smallBatch {
			b := make([]byte, c.smallSize)
			_, _ = rand.Read(b)
			if err := os.WriteFile(filepath.Join(r.local.small, fmt.Sprintf("f-%04d", i)), b, 0o600); err != nil {
				return fmt.Errorf("load: local file: %w", err)
			}
		}
		_ = os.Remove(src)
	}
	sims := make([]*simClient, c.clients)
	for i := range sims {
		sims[i] = r.newSim(i, runID, nodes)
	}
	fmt.Fprintf(os.Stderr, "load: %s: %d clients, nodes %v\n", mode, c.clients, nodeURLs(nodes))

	// Phase 1: sign-up, all at once.
	r.phase.Store("signup")
	sctx, scancel := context.WithTimeout(ctx, 2*c.duration+30*time.Second) // bounded even if a node hangs
	t0 := time.Now()
	parallel(sims, func(s *simClient) { _ = r.signup(sctx, s) })
	scancel()
	r.rec.setPhase("signup", time.Since(t0))
	var live []*simClient
	for _, s := range sims {
		if s.c != nil {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return fmt.Errorf("load: %s: every sign-up failed: %s", mode, strings.Join(r.rec.errorSummary(3), "; "))
	}

	// Change streams stay open through the login and mixed phases.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	ready := make(chan error, len(live))
	for _, s := range live {
		watchers.Add(1)
		go func() { defer watchers.Done(); r.watch(watchCtx, s, ready) }()
	}
	streamsOK := 0
	timeout := time.After(30 * time.Second)
waitStreams:
	for range live {
		select {
		case err := <-ready:
			if err == nil {
				streamsOK++
			} else {
				r.rec.fail("signup", "open change stream", err)
			}
		case <-timeout:
			break waitStreams
		}
	}

	// Phase 2: logins.
	var loginCPU []float64
	if c.loginDuration > 0 {
		l0 := cpuSample(nodes)
		r.phase.Store("login")
		lctx, cancel := context.WithTimeout(ctx, c.loginDuration)
		t0 = time.Now()
		profDone := startProfiles(ctx, c, mode, runID, "login", c.loginDuration, nodes)
		parallel(live, func(s *simClient) { r.loginLoop(lctx, s) })
		profDone()
		r.rec.setPhase("login", time.Since(t0))
		loginCPU = cpuSample(nodes)
		for i := range loginCPU {
			loginCPU[i] -= l0[i]
		}
		cancel()
	}

	// Phase 3: the mixed workload, closed loop: every client as fast as it can (capacity).
	mixed := r.workPhase(ctx, "mixed", live, nodes, 0, mode, runID)
	// Phase 4: the same workload paced at the rate the targets ask for (latency at that rate).
	var paced *phaseResult
	if c.pacedRate > 0 {
		paced = r.workPhase(ctx, "paced", live, nodes, c.pacedRate/float64(c.smallBatch), mode, runID)
	}
	time.Sleep(500 * time.Millisecond) // let the last events arrive
	stopWatch()
	watchers.Wait()
	lost := 0
	for _, s := range live {
		s.mu.Lock()
		lost += len(s.commits)
		s.mu.Unlock()
	}

	rss := make([]int64, len(nodes))
	for i, n := range nodes {
		rss[i], _ = peakRSSKiB(n.cmd.Process.Pid)
	}
	stopNodes()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	report(out, c, mode, desc, r, live, streamsOK, lost, rss, mixed, paced, loginCPU)
	for _, ph := range []*phaseResult{mixed, paced} {
		if ph == nil {
			continue
		}
		for i, p := range ph.commitPhases {
			fmt.Fprintf(out, "\nCommit requests inside server node %d (%s phase, successful commits):\n\n    %s\n",
				i+1, ph.name, strings.ReplaceAll(strings.TrimRight(p, "\n"), "\n", "\n    "))
		}
	}
	return nil
}

// phaseResult is what a work phase measured besides the per-operation rows.
type phaseResult struct {
	name         string
	pace         float64 // small-file puts started per second at most (0: closed loop)
	wall         time.Duration
	cpu          []float64 // CPU seconds per node and, last, of this process
	commitPhases []string  // per node, with -phases
}

// workPhase runs the mixed workload on every live client for c.duration: a closed loop when
// pace is 0, otherwise paced at pace small-file puts per second for all clients together.
func (r *runner) workPhase(ctx context.Context, name string, live []*simClient, nodes []*node, pace float64, mode, runID string) *phaseResult {
	c := r.cfg
	res := &phaseResult{name: name, pace: pace}
	r.phase.Store(name)
	r.pace = pace
	cpu0 := cpuSample(nodes)
	pctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	t0 := time.Now()
	profDone := func() {}
	if name == "mixed" {
		profDone = startProfiles(ctx, c, mode, runID, name, c.duration, nodes)
	}
	if c.phases {
		commitPhases(ctx, nodes, true) // start the sample with the phase
	}
	if pace > 0 {
		go r.pacer(pctx, pace)
	}
	parallel(live, func(s *simClient) { r.mixedLoop(pctx, s) })
	if c.phases {
		res.commitPhases = commitPhases(ctx, nodes, false)
	}
	profDone()
	res.wall = time.Since(t0)
	r.rec.setPhase(name, res.wall)
	res.cpu = cpuSample(nodes)
	for i := range res.cpu {
		res.cpu[i] -= cpu0[i]
	}
	return res
}

func nodeURLs(nodes []*node) []string {
	var u []string
	for _, n := range nodes {
		u = append(u, n.url)
	}
	return u
}

// parallel runs fn for every client at once and waits.
func parallel(sims []*simClient, fn func(*simClient)) {
	var wg sync.WaitGroup
	for _, s := range sims {
		wg.Add(1)
		go func() { defer wg.Done(); fn(s) }()
	}
	wg.Wait()
}

const (
	commitRoute       = "http POST /v1/trees/{id}/commit"
	targetSmallPerSec = 2000
	targetLoginPerSec = 500
	targetCommitP99   = 100 * time.Millisecond
	targetRSSMiB      = 300
)

// cpuSample returns the CPU seconds used so far by each node and, last, by this process.
func cpuSample(nodes []*node) []float64 {
	var out []float64
	for _, n := range nodes {
		v, _ := cpuSeconds(n.cmd.Process.Pid)
		out = append(out, v)
	}
	v, _ := cpuSeconds(os.Getpid())
	return append(out, v)
}

func report(out io.Writer, c config, mode, desc string, r *runner, live []*simClient, streamsOK, lost int,
	rss []int64, mixed, paced *phaseResult, loginCPU []float64) {
	rows := r.rec.rows([]string{"signup", "login", "mixed", "paced"})
	fmt.Fprintf(out, "\n### %s\n\n", desc)
	pacedDesc := "none"
	if paced != nil {
		pacedDesc = fmt.Sprintf("%s at %g small files/s offered (%g puts/s)", c.duration, c.pacedRate, paced.pace)
	}
	fmt.Fprintf(out, "%d clients (%d signed up, %d change streams open), login phase %s, mixed phase (closed loop) %s, "+
		"paced phase %s, small files %d B (%d per put), medium files %d B.\n\n", c.clients, len(live), streamsOK,
		c.loginDuration, c.duration, pacedDesc, c.smallSize, c.smallBatch, c.mediumSize)
	writeTable(out, rows)
	fmt.Fprintln(out)
	fmt.Fprintf(out, "| process | peak RSS (VmHWM) | CPU in mixed phase (%.1f s wall, %d cores) |", mixed.wall.Seconds(), runtime.NumCPU())
	if paced != nil {
		fmt.Fprintf(out, " CPU in paced phase (%.1f s) |", paced.wall.Seconds())
	}
	fmt.Fprintln(out)
	fmt.Fprint(out, "|---|--:|--:|")
	if paced != nil {
		fmt.Fprint(out, "--:|")
	}
	fmt.Fprintln(out)
	maxRSS := int64(0)
	self, _ := peakRSSKiB(os.Getpid())
	for i := range len(rss) + 1 {
		name, k := fmt.Sprintf("server node %d", i+1), self
		if i < len(rss) {
			k = rss[i]
			maxRSS = max(maxRSS, k)
		} else {
			name = "load generator (all clients)"
		}
		fmt.Fprintf(out, "| %s | %.0f MiB | %.1f s |", name, float64(k)/1024, mixed.cpu[i])
		if paced != nil {
			fmt.Fprintf(out, " %.1f s |", paced.cpu[i])
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out)
	filesPerSec := func(phase string) float64 {
		return find(rows, phase, r.putOp()).perSec * float64(c.smallBatch)
	}
	smallFiles := filesPerSec("mixed")
	login := find(rows, "login", "login")
	commit := find(rows, "mixed", commitRoute)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(out, "Targets (%s):\n\n", mode)
	fmt.Fprintf(out, "- committed small files/s (closed loop): %.0f (target >= %d): %s\n", smallFiles, targetSmallPerSec,
		verdict(smallFiles >= targetSmallPerSec))
	fmt.Fprintf(out, "- commits/s (closed loop): %.0f (every accepted commit request: small and medium puts)\n", commit.perSec)
	if c.loginDuration > 0 {
		fmt.Fprintf(out, "- logins/s: %.0f (target >= %d): %s\n", login.perSec, targetLoginPerSec,
			verdict(login.perSec >= targetLoginPerSec))
		if n := float64(login.count); n > 0 && len(loginCPU) > 0 {
			server := 0.0
			for _, v := range loginCPU[:len(loginCPU)-1] {
				server += v
			}
			fmt.Fprintf(out, "- CPU per login: server %.2f ms, load generator (client side, cheap KDF) %.2f ms\n",
				1000*server/n, 1000*loginCPU[len(loginCPU)-1]/n)
		}
	}
	if paced != nil {
		pc := find(rows, "paced", commitRoute)
		pf := filesPerSec("paced")
		fmt.Fprintf(out, "- commit request p99 at %d clients committing %.0f small files/s (paced phase): %s ms "+
			"(target <= %s ms at 200 clients and >= %d files/s): %s\n", len(live), pf, ms(pc.p99), ms(targetCommitP99),
			targetSmallPerSec, verdict(pc.count > 0 && pc.p99 <= targetCommitP99 && pf >= targetSmallPerSec && len(live) >= 200))
	}
	fmt.Fprintf(out, "- commit request p99 in the closed loop (saturated: latency at capacity, see doc/SCALING.md): %s ms\n",
		ms(commit.p99))
	fmt.Fprintf(out, "- peak server RSS: %.0f MiB (target <= %d MiB per node): %s\n", float64(maxRSS)/1024,
		targetRSSMiB, verdict(maxRSS > 0 && maxRSS <= targetRSSMiB*1024))
	if lost > 0 {
		fmt.Fprintf(out, "- %d commits saw no change-stream event within 0.5 s of the end\n", lost)
	}
	if errs := r.rec.errorSummary(8); len(errs) > 0 {
		fmt.Fprintln(os.Stderr, "load: errors ("+mode+"):")
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, "  ", e)
		}
	}
}
