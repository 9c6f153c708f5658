package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"coffer"
)

// latencyBuckets are the upper bounds (seconds) of the request latency histogram.
var latencyBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// readyTimeout bounds each store ping of /readyz.
const readyTimeout = 3 * time.Second

// metrics are the server's Prometheus counters, written by hand in the text exposition format
// (no client library). Labels are route patterns and status codes only: never account IDs,
// usernames, paths or tokens.
type metrics struct {
	mu       sync.Mutex
	requests map[routeStatus]uint64
	latency  map[string]*histogram

	bytesIn, bytesOut atomic.Int64
	streams           atomic.Int64 // open change streams
	admitWaiting      atomic.Int64 // requests waiting for admission
	admitRefused      atomic.Uint64
	storeErrors       atomic.Uint64
	commits           atomic.Uint64
	blobPuts          atomic.Uint64
	blobPutBytes      atomic.Int64
	gcDeleted         atomic.Uint64
	started           time.Time
}

type routeStatus struct {
	route  string
	status int
}

type histogram struct {
	counts [len(latencyBuckets)]uint64 // non-cumulative
	count  uint64
	sum    float64
}

func newMetrics() *metrics {
	return &metrics{requests: map[routeStatus]uint64{}, latency: map[string]*histogram{}, started: time.Now()}
}

// observe records one finished request.
func (m *metrics) observe(route string, status int, d time.Duration, in, out int64) {
	if route == "" {
		route = "unmatched"
	}
	m.bytesIn.Add(in)
	m.bytesOut.Add(out)
	secs := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[routeStatus{route, status}]++
	h := m.latency[route]
	if h == nil {
		h = &histogram{}
		m.latency[route] = h
	}
	h.count++
	h.sum += secs
	for i, le := range latencyBuckets {
		if secs <= le {
			h.counts[i]++
			break
		}
	}
}

// write renders every metric in the Prometheus text format 0.0.4.
func (m *metrics) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	head := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	m.mu.Lock()
	keys := make([]routeStatus, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b routeStatus) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return a.status - b.status
	})
	head("coffer_http_requests_total", "counter", "HTTP requests by route pattern and status code.")
	for _, k := range keys {
		fmt.Fprintf(bw, "coffer_http_requests_total{route=%s,code=\"%d\"} %d\n", quoteLabel(k.route), k.status, m.requests[k])
	}
	routes := make([]string, 0, len(m.latency))
	for r := range m.latency {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	head("coffer_http_request_duration_seconds", "histogram", "HTTP request latency by route pattern (change streams: their whole life).")
	for _, r := range routes {
		h := m.latency[r]
		q := quoteLabel(r)
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(bw, "coffer_http_request_duration_seconds_bucket{route=%s,le=\"%s\"} %d\n", q, formatFloat(le), cum)
		}
		fmt.Fprintf(bw, "coffer_http_request_duration_seconds_bucket{route=%s,le=\"+Inf\"} %d\n", q, h.count)
		fmt.Fprintf(bw, "coffer_http_request_duration_seconds_sum{route=%s} %s\n", q, formatFloat(h.sum))
		fmt.Fprintf(bw, "coffer_http_request_duration_seconds_count{route=%s} %d\n", q, h.count)
	}
	m.mu.Unlock()
	counter := func(name, help string, v any) {
		head(name, "counter", help)
		fmt.Fprintf(bw, "%s %v\n", name, v)
	}
	counter("coffer_http_request_bytes_total", "Request body bytes read.", m.bytesIn.Load())
	counter("coffer_http_response_bytes_total", "Response body bytes written.", m.bytesOut.Load())
	head("coffer_change_streams", "gauge", "Open change streams (server-sent events).")
	fmt.Fprintf(bw, "coffer_change_streams %d\n", m.streams.Load())
	head("coffer_admission_waiting", "gauge", "API requests waiting for admission (the server runs a bounded number at once).")
	fmt.Fprintf(bw, "coffer_admission_waiting %d\n", m.admitWaiting.Load())
	counter("coffer_admission_refused_total", "API requests refused with 503 because the admission queue was full.", m.admitRefused.Load())
	counter("coffer_store_errors_total", "Requests that failed on a metadata or blob store error (answered 5xx).", m.storeErrors.Load())
	counter("coffer_commits_total", "Accepted commits (sign-ups included).", m.commits.Load())
	counter("coffer_blob_puts_total", "Blob uploads recorded.", m.blobPuts.Load())
	counter("coffer_blob_put_bytes_total", "Bytes of recorded blob uploads.", m.blobPutBytes.Load())
	counter("coffer_gc_deleted_blobs_total", "Blobs deleted by garbage collection.", m.gcDeleted.Load())
	head("coffer_start_time_seconds", "gauge", "Start time of the server, Unix seconds.")
	fmt.Fprintf(bw, "coffer_start_time_seconds %d\n", m.started.Unix())
	return bw.Flush()
}

func quoteLabel(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// countingBody counts the request body bytes read by the handler.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = s.metrics.write(w)
}

// handleReady answers 200 when both stores answer a trivial query, else 503 naming which failed
// (never the error text: it could name hosts).
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.isClosing() {
		writeError(w, r, errUnavailable("shutting down"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	var failed []string
	if _, err := s.meta.LatestSeq(ctx, coffer.AccountID{}); err != nil {
		s.log.Warn("readyz: metadata store", "err", err)
		failed = append(failed, "metadata store")
	}
	if _, err := s.blobs.Stat(ctx, coffer.BlobID{}); err != nil && !errors.Is(err, coffer.ErrNotFound) {
		s.log.Warn("readyz: blob store", "err", err)
		failed = append(failed, "blob store")
	}
	if len(failed) > 0 {
		writeError(w, r, errUnavailable(strings.Join(failed, " and ")+" not reachable"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok")
}
