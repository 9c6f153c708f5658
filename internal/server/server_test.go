package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"coffer/api"
)

func TestPanicRecovered(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	rec := httptest.NewRecorder()
	e.srv.middleware(mux).ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	var ae api.Error
	if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil || rec.Code != 500 || ae.Code != api.CodeInternal {
		t.Fatalf("panic: %d %s", rec.Code, rec.Body.String())
	}
	mustContain(t, e.logs.String(), `"msg":"panic"`)
}

func TestRequestLog(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	if st, _ := e.call("GET", "/v1/usage", u.token, nil, nil); st != 200 {
		t.Fatal("usage")
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["route"] == "GET /v1/usage" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no log line for GET /v1/usage:\n%s", e.logs.String())
	}
	if line["session"] != u.session[:8] || line["status"] != float64(200) || line["method"] != "GET" {
		t.Fatalf("log line %v", line)
	}
	for _, k := range []string{"bytes", "duration"} {
		if _, ok := line[k]; !ok {
			t.Fatalf("log line without %s: %v", k, line)
		}
	}
	if strings.Contains(e.logs.String(), u.token) {
		t.Fatal("token logged")
	}
}

func TestRunGC(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.GCInterval = 10 * time.Millisecond; c.GCGrace = time.Minute })
	u := e.signup("alice")
	p, _, _ := u.upload([]byte("garbage"))
	e.clock.Add(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.srv.RunGC(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := e.blobs.Stat(ctx, p.Blob); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("RunGC did not collect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestNewValidatesConfig(t *testing.T) {
	e := newEnv(t)
	if _, err := New(Config{Meta: e.meta, Blobs: e.blobs, Secret: []byte("short")}); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := New(Config{Blobs: e.blobs, Secret: make([]byte, 32)}); err == nil {
		t.Fatal("missing Meta accepted")
	}
}

func TestReadyz(t *testing.T) {
	e := newEnv(t)
	if st, _ := e.call("GET", "/readyz", "", nil, nil); st != 200 {
		t.Fatalf("readyz: %d", st)
	}
	e.srv.Close()
	st, ae := e.call("GET", "/readyz", "", nil, nil)
	wantErr(t, st, ae, 503, api.CodeUnavailable)
}

func TestClientKey(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:1234":             "ip:192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "ip:2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "ip:2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1":       "ip:192.0.2.7",
		"not-an-address":             "ip:not-an-address",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		if got := clientKey(r); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestChallengeSetPrunes(t *testing.T) {
	cs := newChallengeSet()
	now := time.Unix(1000, 0)
	for i := range 2000 {
		var c [32]byte
		c[0], c[1] = byte(i), byte(i>>8)
		if !cs.use(c, now.Add(time.Second), now) {
			t.Fatal("fresh challenge refused")
		}
	}
	var c [32]byte
	if cs.use(c, now.Add(time.Second), now) {
		t.Fatal("spent challenge accepted")
	}
	later := now.Add(time.Minute)
	c[31] = 1
	cs.use(c, later.Add(time.Second), later)
	if n := len(cs.used); n != 1 {
		t.Fatalf("expired challenges not pruned: %d left", n)
	}
}
