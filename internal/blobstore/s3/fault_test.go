package s3_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/internal/blobstore/blobstoretest"
	"coffer/internal/blobstore/retry"
	"coffer/internal/blobstore/s3"
)

// faultProxy is a reverse proxy in front of the real S3 server that injects failures: the next
// fail[method] requests of that method get 503 SlowDown, and the next truncate GETs of an object
// lose their connection halfway through the body.
type faultProxy struct {
	mu       sync.Mutex
	fail     map[string]int
	truncate int
	seen     map[string]int
}

func (p *faultProxy) set(fail map[string]int, truncate int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail, p.truncate = fail, truncate
}

func (p *faultProxy) count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[method]
}

// startFaultProxy returns cfg pointing at a proxy in front of cfg's server.
func startFaultProxy(t *testing.T, cfg s3.Config) (s3.Config, *faultProxy) {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: cfg.Endpoint}
	p := &faultProxy{seen: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if resp.Request.Method == http.MethodGet && strings.Contains(resp.Request.URL.Path, "/blobs/") &&
			p.truncate > 0 && resp.ContentLength > 1 {
			p.truncate--
			resp.Body = &truncatedBody{ReadCloser: resp.Body, left: resp.ContentLength / 2}
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen[r.Method]++
		fail := p.fail[r.Method] > 0
		if fail {
			p.fail[r.Method]--
		}
		p.mu.Unlock()
		if fail {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	// The proxy aborts truncated responses by panicking with http.ErrAbortHandler, which the
	// server logs; keep the test output clean.
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	t.Cleanup(srv.Close)
	cfg.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return cfg, p
}

// truncatedBody yields left bytes and then fails, so that the proxy drops the connection.
type truncatedBody struct {
	io.ReadCloser
	left int64
}

func (b *truncatedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("injected: connection lost")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// TestFaultsAreRetryable checks, against the real server behind a faulty proxy, that throttling
// and lost connections are reported as coffer.ErrUnavailable, and that the retry decorator
// hides them (rewinding Put's reader, resuming a Get midway).
func TestFaultsAreRetryable(t *testing.T) {
	cfg, _ := freshBucket(t)
	cfg, proxy := startFaultProxy(t, cfg)
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := s3.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1<<20)
	rand.Read(b)

	// Without the decorator, each fault is one ErrUnavailable.
	proxy.set(map[string]int{"PUT": 1}, 0)
	if _, err := blobstoretest.PutBytes(t.Context(), s, b); !errors.Is(err, coffer.ErrUnavailable) {
		t.Errorf("Put under SlowDown = %v, want ErrUnavailable", err)
	}
	proxy.set(map[string]int{"HEAD": 1}, 0)
	if _, err := s.Stat(t.Context(), coffer.BlobID{}); !errors.Is(err, coffer.ErrUnavailable) {
		t.Errorf("Stat under SlowDown = %v, want ErrUnavailable", err)
	}
	proxy.set(map[string]int{"GET": 1}, 0)
	if _, err := s.Get(t.Context(), coffer.BlobID{}, 0, -1); !errors.Is(err, coffer.ErrUnavailable) {
		t.Errorf("Get under SlowDown = %v, want ErrUnavailable", err)
	}
	proxy.set(map[string]int{"GET": 1}, 0)
	if err := s.List(t.Context(), func(coffer.BlobID, int64) error { return nil }); !errors.Is(err, coffer.ErrUnavailable) {
		t.Errorf("List under SlowDown = %v, want ErrUnavailable", err)
	}
	proxy.set(map[string]int{"DELETE": 1}, 0)
	if err := s.Delete(t.Context(), coffer.BlobID{}); !errors.Is(err, coffer.ErrUnavailable) {
		t.Errorf("Delete under SlowDown = %v, want ErrUnavailable", err)
	}
	proxy.set(nil, 0)
	id, err := blobstoretest.PutBytes(t.Context(), s, b)
	if err != nil {
		t.Fatal(err)
	}
	proxy.set(nil, 1)
	rc, err := s.Get(t.Context(), id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, coffer.ErrUnavailable) {
		t.Errorf("reading a body cut off midway = %v, want ErrUnavailable", err)
	}

	// With it, the same faults are invisible.
	rs := retry.New(s, retry.Config{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	b2 := make([]byte, 1<<20)
	rand.Read(b2)
	proxy.set(map[string]int{"PUT": 2}, 0)
	putsBefore := proxy.count("PUT")
	id2, err := blobstoretest.PutBytes(t.Context(), rs, b2)
	if err != nil {
		t.Fatalf("Put through retry: %v", err)
	}
	if n := proxy.count("PUT") - putsBefore; n < 3 {
		t.Errorf("the retried Put sent %d PUTs, want at least 3", n)
	}
	proxy.set(map[string]int{"HEAD": 2}, 0)
	if n, err := rs.Stat(t.Context(), id2); err != nil || n != int64(len(b2)) {
		t.Fatalf("Stat through retry = %d, %v", n, err)
	}
	for _, want := range [][]byte{b2, b2[1000:]} {
		off := int64(len(b2) - len(want))
		proxy.set(map[string]int{"GET": 2}, 2) // two 503s, then two connections cut midway
		rc, err := rs.Get(t.Context(), id2, off, -1)
		if err != nil {
			t.Fatalf("Get through retry: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get(%d) through retry read %d bytes, %v; want %d correct bytes", off, len(got), err, len(want))
		}
	}
	var ids []coffer.BlobID
	proxy.set(map[string]int{"GET": 2}, 0)
	if err := rs.List(t.Context(), func(id coffer.BlobID, _ int64) error { ids = append(ids, id); return nil }); err != nil || len(ids) != 2 {
		t.Fatalf("List through retry = %v, %v", ids, err)
	}
	proxy.set(map[string]int{"DELETE": 2}, 0)
	if err := rs.Delete(t.Context(), id2); err != nil {
		t.Fatalf("Delete through retry: %v", err)
	}
	proxy.set(nil, 0)
	if _, err := rs.Stat(t.Context(), id2); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v, want ErrNotFound", err)
	}
}
