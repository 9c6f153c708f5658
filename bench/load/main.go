// Command load is Coffer's load benchmark (issue 5): N simulated accounts, each a real
// coffer/client.Client in this process, against 1 or 2 real `coffer serve` processes on loopback.
//
//	go run ./bench/load [-clients 200] [-duration 20s] [-login-duration 5s] [-nodes 1|2]
//	    [-mode embedded|scaleout|both] [-small-per-client 0] [-small-size 4KiB] [-medium-size 1MiB]
//	    [-pg DSN] [-s3 http://KEY:SECRET@127.0.0.1:PORT] [-coffer BIN] [-dir DIR] [-keep]
//
// Phases, each measured separately and printed as one Markdown table per mode:
//
//  1. signup: every client signs up at once (cheap client-side KDF: the server is measured, not
//     Argon2id);
//  2. login: every client logs in repeatedly for -login-duration;
//  3. mixed: for -duration every client loops: put one small file (blob upload + commit, one commit
//     per file), and every few iterations list "/", download a small file, put or download a medium
//     file. Meanwhile every client watches its change stream (GET /v1/changes/stream; with 2 nodes
//     on the other node than it commits through) and the time from the commit response to the
//     event is recorded.
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
	pace           float64
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
	flag.IntVar(&c.smallBatch, "small-batch", 1, "small files per put: 1 uploads one file (one blob, one commit); K > 1 uploads a new folder of K files (packed blobs; one commit creates the folder and its files)")
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
	flag.Float64Var(&c.pace, "pace", 0, "paced (open-loop) mixed phase: the clients together start at most this many small-file puts per second (0: closed loop, every client as fast as it can; the targets are for the closed loop)")
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
	case c.pace < 0:
		return fmt.Errorf("load: -pace %g: want >= 0", c.pace)
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

	// Phase 3: the mixed workload.
	r.phase.Store("mixed")
	cpu0 := cpuSample(nodes)
	mctx, cancel := context.WithTimeout(ctx, c.duration)
	t0 = time.Now()
	profDone := startProfiles(ctx, c, mode, runID, "mixed", c.duration, nodes)
	if c.phases {
		commitPhases(ctx, nodes, true) // start the sample with the phase
	}
	if c.pace > 0 {
		go r.pacer(mctx, c.pace)
	}
	parallel(live, func(s *simClient) { r.mixedLoop(mctx, s) })
	var phases []string
	if c.phases {
		phases = commitPhases(ctx, nodes, false)
	}
	profDone()
	mixedWall := time.Since(t0)
	r.rec.setPhase("mixed", mixedWall)
	cpu1 := cpuSample(nodes)
	for i := range cpu1 {
		cpu1[i] -= cpu0[i]
	}
	cancel()
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
	report(out, c, mode, desc, r, live, streamsOK, lost, rss, cpu1, loginCPU, mixedWall)
	for i, p := range phases {
		fmt.Fprintf(out, "\nCommit requests inside server node %d (mixed phase, successful commits):\n\n    %s\n",
			i+1, strings.ReplaceAll(strings.TrimRight(p, "\n"), "\n", "\n    "))
	}
	return nil
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
	rss []int64, cpu, loginCPU []float64, mixedWall time.Duration) {
	rows := r.rec.rows([]string{"signup", "login", "mixed"})
	fmt.Fprintf(out, "\n### %s\n\n", desc)
	fmt.Fprintf(out, "%d clients (%d signed up, %d change streams open), mixed phase %s, login phase %s, "+
		"small files %d B (%d per put), medium files %d B.\n\n", c.clients, len(live), streamsOK, c.duration,
		c.loginDuration, c.smallSize, max(c.smallBatch, 1), c.mediumSize)
	writeTable(out, rows)
	fmt.Fprintln(out)
	fmt.Fprintf(out, "| process | peak RSS (VmHWM) | CPU in mixed phase (%.1f s wall, %d cores) |\n",
		mixedWall.Seconds(), runtime.NumCPU())
	fmt.Fprintln(out, "|---|--:|--:|")
	maxRSS := int64(0)
	for i, k := range rss {
		fmt.Fprintf(out, "| server node %d | %.0f MiB | %.1f s |\n", i+1, float64(k)/1024, cpu[i])
		maxRSS = max(maxRSS, k)
	}
	self, _ := peakRSSKiB(os.Getpid())
	fmt.Fprintf(out, "| load generator (all clients) | %.0f MiB | %.1f s |\n", float64(self)/1024, cpu[len(cpu)-1])
	fmt.Fprintln(out)
	small := find(rows, "mixed", r.putOp())
	smallFiles := small.perSec * float64(max(c.smallBatch, 1))
	login := find(rows, "login", "login")
	commit := find(rows, "mixed", commitRoute)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(out, "Targets (%s):\n\n", mode)
	fmt.Fprintf(out, "- committed small files/s: %.0f (target >= %d): %s\n", smallFiles, targetSmallPerSec,
		verdict(smallFiles >= targetSmallPerSec))
	fmt.Fprintf(out, "- commits/s: %.0f (every accepted commit request of the mixed phase: small and medium puts)\n", commit.perSec)
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
	if c.pace > 0 {
		fmt.Fprintf(out, "- commit request p99: %s ms at %d clients PACED at %g puts/s (%.0f started per s): "+
			"the target is for the closed loop, not this run\n", ms(commit.p99), len(live), c.pace, small.perSec)
	} else {
		fmt.Fprintf(out, "- commit request p99: %s ms at %d clients (target <= %s ms at 200): %s\n", ms(commit.p99),
			len(live), ms(targetCommitP99), verdict(commit.count > 0 && commit.p99 <= targetCommitP99))
	}
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
