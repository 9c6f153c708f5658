// Package testenv runs a real Coffer server in-process for tests: internal/server over SQLite and
// a disk blob store in t.TempDir(), served over loopback HTTP by httptest, plus a reverse proxy in
// front of it whose hook can rewrite any response (hostile-server tests).
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/client"
	"coffer/format"
	"coffer/internal/blobstore/disk"
	"coffer/internal/metastore/sqlite"
	"coffer/internal/server"
)

// Hook sees every response passing through the proxy and may rewrite it (status, headers, body).
// Returning an error makes the proxy answer 502 Bad Gateway.
type Hook func(req *http.Request, resp *http.Response) error

// Env is one test server.
type Env struct {
	// URL reaches the server directly; ProxyURL goes through the hook.
	URL      string
	ProxyURL string
	Dir      string // the server's data directory
	DBPath   string // the SQLite file
	Server   *server.Server
	Meta     *sqlite.Store
	Blobs    *disk.Store

	mu   sync.Mutex
	hook Hook
}

// Option adjusts the server configuration.
type Option func(*server.Config)

// CheapKDF are Argon2id parameters for tests (1 pass, 64 KiB): fast and never for production.
func CheapKDF() format.KDFParams { return format.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1} }

// New starts a server and its proxy; both stop when the test ends.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &Env{Dir: dir, DBPath: filepath.Join(dir, "meta.db")}
	meta, err := sqlite.Open(ctx, e.DBPath, nil)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	blobs, err := disk.New(filepath.Join(dir, "blobstore"))
	if err != nil {
		meta.Close()
		t.Fatalf("testenv: %v", err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	cfg := server.Config{Meta: meta, Blobs: blobs, Secret: secret,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		meta.Close()
		t.Fatalf("testenv: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	target, _ := url.Parse(ts.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		e.mu.Lock()
		h := e.hook
		e.mu.Unlock()
		if h == nil {
			return nil
		}
		return h(resp.Request, resp)
	}
	rp.ErrorLog = nil
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	ps := httptest.NewServer(rp)
	t.Cleanup(func() {
		ps.Close()
		srv.Close()
		ts.Close()
		meta.Close()
	})
	e.URL, e.ProxyURL = ts.URL, ps.URL
	e.Server, e.Meta, e.Blobs = srv, meta, blobs
	return e
}

// SetHook installs (nil: removes) the proxy's response hook.
func (e *Env) SetHook(h Hook) {
	e.mu.Lock()
	e.hook = h
	e.mu.Unlock()
}

// Config returns a client configuration through the proxy with cheap KDF parameters (MinKDF
// lowered to match) and the given state directory ("" for none).
func (e *Env) Config(stateDir string) client.Config {
	return client.Config{
		Server:   e.ProxyURL,
		StateDir: stateDir,
		KDF:      CheapKDF(),
		MinKDF:   CheapKDF(),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// Password is the password Client gives username.
func Password(username string) []byte { return []byte("correct horse battery " + username) }

// Client signs username up (password Password(username)) and returns the logged-in client,
// talking through the proxy, with a state directory in t.TempDir().
func (e *Env) Client(t testing.TB, username string) *client.Client {
	t.Helper()
	c, err := client.Signup(context.Background(), e.Config(t.TempDir()), client.SignupOptions{
		Username: username, Password: Password(username), Device: "test"})
	if err != nil {
		t.Fatalf("testenv: signup %s: %v", username, err)
	}
	return c
}

// ClientWith is Client with a caller-chosen configuration (Server defaults to the proxy).
func (e *Env) ClientWith(t testing.TB, cfg client.Config, username string) *client.Client {
	t.Helper()
	if cfg.Server == "" {
		cfg.Server = e.ProxyURL
	}
	c, err := client.Signup(context.Background(), cfg, client.SignupOptions{
		Username: username, Password: Password(username), Device: "test"})
	if err != nil {
		t.Fatalf("testenv: signup %s: %v", username, err)
	}
	return c
}

// DB opens the server's SQLite file directly, for tests that tamper with stored rows.
func (e *Env) DB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", e.DBPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// BlobPath is the file holding a blob in the disk store (its layout: blobs/ab/cd/<id>).
func (e *Env) BlobPath(id coffer.BlobID) string {
	h := id.String()
	return filepath.Join(e.Dir, "blobstore", "blobs", h[0:2], h[2:4], h)
}

// ReplaceBody sets a response's body to b and fixes its length headers.
func ReplaceBody(resp *http.Response, b []byte) {
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
}

// ReadBody reads (and replaces, so it can be read again) a response's body.
func ReadBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return b, err
}

// Eventually polls cond until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("testenv: condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
