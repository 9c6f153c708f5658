package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4KiB": 4096, "1MiB": 1 << 20, "2GiB": 2 << 30, "17": 17, "5B": 5, "0": 0} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "-1KiB", "1.5MiB", "ten"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded; want an error", in)
		}
	}
}

func TestRoute(t *testing.T) {
	for path, want := range map[string]string{
		"/v1/trees/0123456789abcdef0123456789abcdef/commit": "POST /v1/trees/{id}/commit",
		"/v1/login/start": "POST /v1/login/start",
	} {
		r, _ := http.NewRequest("POST", "http://127.0.0.1"+path+"?since=3", nil)
		if got := route(r); got != want {
			t.Errorf("route(%s) = %q; want %q", path, got, want)
		}
	}
}

func TestRecorderRows(t *testing.T) {
	r := newRecorder()
	for i := 1; i <= 100; i++ {
		r.ok("mixed", "op", time.Duration(i)*time.Millisecond)
	}
	r.fail("mixed", "op", errors.New("boom"))
	r.ok("signup", "signup", time.Second)
	r.setPhase("mixed", 2*time.Second)
	r.setPhase("signup", time.Second)
	rows := r.rows([]string{"signup", "mixed"})
	if len(rows) != 2 || rows[0].op != "signup" {
		t.Fatalf("rows = %+v; want signup first, then op", rows)
	}
	got := find(rows, "mixed", "op")
	if got.count != 100 || got.errors != 1 || got.perSec != 50 || got.p50 != 51*time.Millisecond ||
		got.p99 != 99*time.Millisecond || got.max != 100*time.Millisecond {
		t.Errorf("summary = %+v", got)
	}
	if e := r.errorSummary(5); len(e) != 1 || !strings.Contains(e[0], "boom") {
		t.Errorf("errorSummary = %q", e)
	}
}

func TestProcReaders(t *testing.T) {
	rss, err := peakRSSKiB(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("peakRSSKiB = %d, %v", rss, err)
	}
	if _, err := cpuSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := peakRSSKiB(-1); err == nil {
		t.Error("peakRSSKiB(-1) succeeded")
	}
}

func TestValidate(t *testing.T) {
	ok := config{clients: 1, duration: time.Second, nodes: 1, mode: "embedded", smallBatch: 1, smallSize: 1}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*config){
		"clients":     func(c *config) { c.clients = 0 },
		"nodes":       func(c *config) { c.nodes = 3 },
		"mode":        func(c *config) { c.mode = "cloud" },
		"paced rate":  func(c *config) { c.pacedRate = -1 },
		"no services": func(c *config) { c.mode = "scaleout"; c.pg, c.s3 = "", "" },
		"remote pg": func(c *config) {
			c.mode, c.pg, c.s3 = "scaleout", "postgres://db.example.com/x", "http://k:s@127.0.0.1:9000"
		},
		"remote s3": func(c *config) {
			c.mode, c.pg, c.s3 = "scaleout", "postgres://127.0.0.1/x", "http://k:s@s3.example.com:9000"
		},
	}
	for name, mutate := range bad {
		c := ok
		mutate(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: validate succeeded", name)
		}
	}
}

// TestEmbeddedRun builds the real coffer binary, starts `coffer serve` and runs a tiny load:
// every phase must produce successful operations and change-stream events, with no errors.
func TestEmbeddedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs coffer serve")
	}
	c := config{clients: 3, duration: 1500 * time.Millisecond, loginDuration: 500 * time.Millisecond, nodes: 1,
		mode: "embedded", smallBatch: 1, smallSize: 100, mediumSize: 64 << 10, dir: t.TempDir()}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, c, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	row := regexp.MustCompile(`\| (\w+) \| ([^|]+) \| (\d+) \| (\d+) \|`)
	seen := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[3])
		seen[m[1]+"/"+strings.TrimSpace(m[2])] = n
		if m[4] != "0" {
			t.Errorf("errors in row %s", m[0])
		}
	}
	for _, k := range []string{"signup/signup", "login/login", "mixed/put small", "mixed/" + commitRoute,
		"mixed/change stream delivery"} {
		if seen[k] == 0 {
			t.Errorf("no successful %s in:\n%s", k, text)
		}
	}
	if !strings.Contains(text, "peak RSS") {
		t.Errorf("no RSS table in:\n%s", text)
	}
}

// TestPacedRun: in the paced phase the clients together start at most -paced-rate / -small-batch
// puts per second, the latency verdict comes from that phase, and with -phases the report shows
// each node's commit phases of both work phases; a folder put is one commit.
func TestPacedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs coffer serve")
	}
	c := config{clients: 4, duration: 2 * time.Second, nodes: 1, mode: "embedded", smallBatch: 3, smallSize: 100,
		dir: t.TempDir(), pacedRate: 15, phases: true}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, c, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !regexp.MustCompile(`\| mixed \| put folder of 3 small \| \d+ \| 0 \|`).MatchString(text) {
		t.Errorf("no closed-loop folder put row in:\n%s", text)
	}
	m := regexp.MustCompile(`\| paced \| put folder of 3 small \| (\d+) \| 0 \|`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no folder put row in:\n%s", text)
	}
	// 2 s at 5 per second, plus the token that may wait at the start.
	if n, _ := strconv.Atoi(m[1]); n < 1 || n > 11 {
		t.Errorf("%d puts at 5 per second over 2 s; want 1..11:\n%s", n, text)
	}
	// 4 clients: the latency verdict cannot be met (it needs 200 clients and 2,000 files/s).
	if !regexp.MustCompile(`commit request p99 at 4 clients committing \d+ small files/s \(paced phase\): [0-9.]+ ms .*: NOT met`).MatchString(text) {
		t.Errorf("no latency verdict from the paced phase:\n%s", text)
	}
	for _, phase := range []string{"mixed", "paced"} {
		ph := regexp.MustCompile(`Commit requests inside server node 1 \(` + phase + `[^\n]*\n\n\s+commits (\d+) `).FindStringSubmatch(text)
		if ph == nil || ph[1] == "0" {
			t.Fatalf("no commit phases of the %s phase in:\n%s", phase, text)
		}
	}
	for _, name := range []string{"queue", "validate", "store", "total"} {
		if !regexp.MustCompile(`\n\s+` + name + ` `).MatchString(text) {
			t.Errorf("phase %s missing:\n%s", name, text)
		}
	}
}
