// Package server implements the Coffer HTTP API (doc/PROTOCOL.md): accounts, sessions, blobs,
// commit validation, folder listings, the change feed and garbage collection.
//
// The server is the adversary in Coffer's threat model: it never holds a key and sees only
// ciphertext plus the cleartext record headers. It still validates every commit fully (head
// chain, writer signature, version chains, tree shape, state root) so that a buggy client cannot
// commit a state the server could not serve, and so that one account cannot touch another's data.
//
// Storage lives behind metastore.Store and blobstore.Store. Everything else the server keeps in
// memory (used login challenges, the change hub, the blob locks below) is per process; a
// multi-node deployment needs those in shared storage (see doc/PROTOCOL.md, "Deployment").
package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"coffer/internal/blobstore"
	"coffer/internal/metastore"
)

// Defaults for zero Config fields.
const (
	DefaultKeepVersions = 10
	DefaultGCGrace      = time.Hour
	DefaultGCInterval   = 10 * time.Minute
	DefaultSessionTTL   = 30 * 24 * time.Hour
)

// Config configures a Server. Meta, Blobs and Secret are required.
type Config struct {
	Meta   metastore.Store
	Blobs  blobstore.Store
	Logger *slog.Logger // nil: discard
	// InviteOnly requires an unused invite code at sign-up.
	InviteOnly bool
	// DefaultQuota is the quota of new accounts in bytes (0 = unlimited).
	DefaultQuota int64
	// KeepVersions is the number of replaced file records kept per node (default 10; a negative
	// value keeps none).
	KeepVersions int
	// GCGrace is how old an unreferenced blob must be before GC deletes it (default 1h).
	GCGrace time.Duration
	// GCInterval is the pause between GC passes in RunGC (default 10m).
	GCInterval time.Duration
	// SessionTTL is the sliding session lifetime (default 30 days).
	SessionTTL time.Duration
	// Secret (32 bytes) keys the stateless login challenges and the fake prelogin answers for
	// unknown usernames. It must stay stable across restarts (Serve keeps it in server.secret).
	Secret []byte
	// Notifier carries change notifications to the change streams (default: an in-process hub).
	Notifier Notifier
	// Now returns the current time (default time.Now; tests override it).
	Now func() time.Time
}

// Server serves the Coffer API. Create it with New; it is safe for concurrent use.
type Server struct {
	cfg    Config
	meta   metastore.Store
	blobs  blobstore.Store
	log    *slog.Logger
	notify Notifier
	ownHub *Hub // non-nil when the server created the notifier and must close it

	challenges *challengeSet
	blobLocks  [256]sync.Mutex // serialise upload bookkeeping against GC deletes, by id[0]

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: ends change streams
	handler   http.Handler
}

// New validates cfg and returns a Server. It does not take ownership of the stores.
func New(cfg Config) (*Server, error) {
	if cfg.Meta == nil || cfg.Blobs == nil {
		return nil, errors.New("server: config: Meta and Blobs are required")
	}
	if len(cfg.Secret) != 32 {
		return nil, fmt.Errorf("server: config: Secret must be 32 bytes, got %d", len(cfg.Secret))
	}
	if cfg.DefaultQuota < 0 {
		return nil, errors.New("server: config: DefaultQuota must not be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.KeepVersions == 0 {
		cfg.KeepVersions = DefaultKeepVersions
	} else if cfg.KeepVersions < 0 {
		cfg.KeepVersions = 0
	}
	if cfg.GCGrace <= 0 {
		cfg.GCGrace = DefaultGCGrace
	}
	if cfg.GCInterval <= 0 {
		cfg.GCInterval = DefaultGCInterval
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:        cfg,
		meta:       cfg.Meta,
		blobs:      cfg.Blobs,
		log:        cfg.Logger,
		notify:     cfg.Notifier,
		challenges: newChallengeSet(),
		closing:    make(chan struct{}),
	}
	if s.notify == nil {
		s.ownHub = NewHub()
		s.notify = s.ownHub
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP handler serving every endpoint.
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends the change streams and releases the in-process hub. In-flight ordinary requests are
// not interrupted (http.Server.Shutdown waits for them). It does not close the stores.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		if s.ownHub != nil {
			s.ownHub.Close()
		}
	})
	return nil
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// isClosing reports whether Close was called.
func (s *Server) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// routes registers every endpoint.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.isClosing() {
			writeError(w, r, errUnavailable("shutting down"))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})

	// Accounts and sessions (auth.go, account.go).
	mux.Handle("POST /v1/signup", s.public(s.handleSignup))
	mux.Handle("POST /v1/login/start", s.public(s.handleLoginStart))
	mux.Handle("POST /v1/login/finish", s.public(s.handleLoginFinish))
	mux.Handle("POST /v1/logout", s.authed(s.handleLogout))
	mux.Handle("GET /v1/account", s.authed(s.handleAccount))
	mux.Handle("PUT /v1/account/password", s.authed(s.handlePassword))
	mux.Handle("GET /v1/sessions", s.authed(s.handleSessions))
	mux.Handle("DELETE /v1/sessions/{id}", s.authed(s.handleDeleteSession))
	mux.Handle("GET /v1/usage", s.authed(s.handleUsage))
	mux.Handle("GET /v1/users/{username}/keys", s.authed(s.handleUserKeys))

	// Blobs (blobs.go).
	mux.Handle("POST /v1/trees/{tree}/blobs", s.authed(s.handleBlobPut))
	mux.Handle("PUT /v1/trees/{tree}/blobs", s.authed(s.handleBlobPut))
	mux.Handle("POST /v1/blobs/check", s.authed(s.handleBlobCheck))
	mux.Handle("GET /v1/blobs/{id}", s.authed(s.handleBlobGet))

	// Trees (trees.go, commit.go).
	mux.Handle("GET /v1/trees/{tree}/head", s.authed(s.handleHead))
	mux.Handle("GET /v1/trees/{tree}/folders/{folder}", s.authed(s.handleListing))
	mux.Handle("GET /v1/trees/{tree}/nodes/{node}/versions", s.authed(s.handleVersions))
	mux.Handle("POST /v1/trees/{tree}/commit", s.authed(s.handleCommit))

	// Change feed (changes.go).
	mux.Handle("GET /v1/changes", s.authed(s.handleChanges))
	mux.Handle("GET /v1/changes/stream", s.authed(s.handleChangeStream))

	return s.middleware(mux)
}
