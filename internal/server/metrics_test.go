package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, e *env) string {
	t.Helper()
	resp := e.request("GET", "/metrics", "", nil)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// metric returns the value of the sample line starting with name (labels included), or -1.
func metric(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				return -2
			}
			return v
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	data := []byte(strings.Repeat("x", 3000))
	if _, st, ae := u.upload(data); st != 200 {
		t.Fatalf("upload: %d %+v", st, ae)
	}
	u.commit(u.folder(u.root, "a"))
	e.call("GET", "/v1/nope", "", nil, nil)
	e.call("GET", "/v1/account", "bad-token", nil, nil)

	// An open change stream shows in the gauge.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/v1/changes/stream", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	m := scrape(t, e)
	for name, want := range map[string]float64{
		`coffer_http_requests_total{route="POST /v1/signup",code="200"}`:                 1,
		`coffer_http_requests_total{route="PUT /v1/trees/{tree}/blobs/{id}",code="200"}`: 1,
		`coffer_http_requests_total{route="POST /v1/trees/{tree}/commit",code="200"}`:    1,
		`coffer_http_requests_total{route="unmatched",code="404"}`:                       1,
		`coffer_http_requests_total{route="GET /v1/account",code="401"}`:                 1,
		`coffer_commits_total`:        2,
		`coffer_blob_puts_total`:      1,
		`coffer_blob_put_bytes_total`: 3000,
		`coffer_change_streams`:       1,
		`coffer_store_errors_total`:   0,
		`coffer_http_request_duration_seconds_count{route="POST /v1/signup"}`:            1,
		`coffer_http_request_duration_seconds_bucket{route="POST /v1/signup",le="+Inf"}`: 1,
	} {
		if got := metric(m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if in := metric(m, "coffer_http_request_bytes_total"); in < 3000 {
		t.Errorf("request bytes %v, want >= 3000", in)
	}
	if out := metric(m, "coffer_http_response_bytes_total"); out <= 0 {
		t.Errorf("response bytes %v", out)
	}
	// Histogram buckets are cumulative and end at the count.
	re := regexp.MustCompile(`(?m)^coffer_http_request_duration_seconds_bucket\{route="POST /v1/trees/\{tree\}/commit",le="[^"]+"\} (\d+)$`)
	prev := -1
	for _, mm := range re.FindAllStringSubmatch(m, -1) {
		n, _ := strconv.Atoi(mm[1])
		if n < prev {
			t.Fatalf("histogram not cumulative:\n%s", m)
		}
		prev = n
	}
	if prev != 1 {
		t.Fatalf("last commit bucket %d, want 1", prev)
	}
	for _, secret := range []string{u.token, u.name, u.acct.String()} {
		if strings.Contains(m, secret) {
			t.Fatalf("metrics contain %q", secret)
		}
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for metric(scrape(t, e), "coffer_change_streams") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("stream gauge did not drop after the stream ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadyzPingsStores(t *testing.T) {
	e := newEnv(t)
	resp := e.request("GET", "/readyz", "", nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}
	e.meta.Close() // the metadata store fails from now on
	st, ae := e.call("GET", "/readyz", "", nil, nil)
	if st != 503 || !strings.Contains(ae.Message, "metadata store") || strings.Contains(ae.Message, "blob store") {
		t.Fatalf("readyz with a closed store: %d %+v", st, ae)
	}
}

// TestServeMetricsListen: with MetricsListen, /metrics moves to its own listener.
func TestServeMetricsListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MetricsListen: maddr,
			Logger: slog.New(slog.DiscardHandler), OnListen: func(u string) { urls <- u }})
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get(url + "/metrics"); st != 404 {
		t.Errorf("main listener /metrics: %d, want 404", st)
	}
	if st := get("http://" + maddr + "/metrics"); st != 200 {
		t.Errorf("metrics listener: %d", st)
	}
	if st := get("http://" + maddr + "/v1/account"); st != 404 {
		t.Errorf("metrics listener serves the API: %d", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
