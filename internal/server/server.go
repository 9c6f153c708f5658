// Package server implements the Coffer HTTP API (doc/PROTOCOL.md): accounts, sessions, blobs,
// commit validation, folder listings, the change feed and garbage collection.
//
// The server is the adversary in Coffer's threat model: it never holds a key and sees only
// ciphertext plus the cleartext record headers. It still validates every commit fully (head
// chain, writer signature, version chains, tree shape, state root) so that a buggy client cannot
// commit a state the server could not serve, and so that one account cannot touch another's data.
//
// Storage lives behind metastore.Store and blobstore.Store. Everything else the server keeps in
// memory (used login challenges, the change hub, the blob locks) is per process by default; a
// multi-node deployment supplies shared implementations through Config.Notifier,
// Config.Challenges and Config.BlobLocker (internal/notify does so over PostgreSQL; OpenStores
// wires it up; see doc/SCALING.md).
package server

import (
	"context"
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
	// SessionCacheTTL is how long a verified session is trusted from memory before the store is
	// asked again (default DefaultSessionCacheTTL; negative: no cache). Revocations through this
	// server take effect at once; through another node sharing the store, within this time.
	SessionCacheTTL time.Duration
	// MaxActive bounds the API requests running at once (default DefaultMaxActivePerCPU per
	// CPU; negative: no bound). Change streams are not counted. MaxQueued bounds those waiting
	// for a slot (default DefaultMaxQueued); past it a request is answered 503 with Retry-After.
	// Commits and login completions are admitted before other waiting requests.
	MaxActive, MaxQueued int
	// Secret (32 bytes) keys the stateless login challenges and the fake prelogin answers for
	// unknown usernames. It must stay stable across restarts (Serve keeps it in server.secret).
	Secret []byte
	// Notifier carries change notifications to the change streams (default: an in-process hub).
	Notifier Notifier
	// Challenges, if set, is the set of spent login challenges shared by every node (default: a
	// per-process set, right for a single node).
	Challenges ChallengeSpender
	// BlobLocker, if set, orders blob uploads against GC deletes across nodes (default: the
	// per-process locks, right for a single node).
	BlobLocker BlobLocker
	// PrivateMetrics removes GET /metrics from Handler; MetricsHandler still serves it (for a
	// separate, non-public listener).
	PrivateMetrics bool
	// CommitPhases records how long each commit request spends in each phase (admission queue,
	// validation, store, …) for CommitPhasesHandler. Off by default; it is a diagnostic.
	CommitPhases bool
	// Now returns the current time (default time.Now; tests override it).
	Now func() time.Time
}

// ChallengeSpender is a set of spent login challenges shared by every server node.
type ChallengeSpender interface {
	// SpendChallenge marks c (valid until expires) as used and reports whether it was unused
	// before: for each challenge exactly one call, on any node, returns true.
	SpendChallenge(ctx context.Context, c [32]byte, expires time.Time) (bool, error)
}

// BlobLocker is a set of 256 cluster-wide locks, one per first byte of a blob ID.
type BlobLocker interface {
	// LockBlob blocks until it holds lock b (or ctx ends) and returns its unlock function, which
	// must be called exactly once.
	LockBlob(ctx context.Context, b byte) (unlock func(), err error)
}

// Server serves the Coffer API. Create it with New; it is safe for concurrent use.
type Server struct {
	cfg    Config
	meta   metastore.Store
	blobs  blobstore.Store
	log    *slog.Logger
	notify Notifier
	ownHub *Hub // non-nil when the server created the notifier and must close it

	metrics    *metrics
	challenges *challengeSet
	sessions   *sessionCache   // nil: no cache
	admit      *admission      // nil: no admission control
	phases     *commitPhases   // nil: commit phases are not recorded
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
	if cfg.SessionCacheTTL == 0 {
		cfg.SessionCacheTTL = DefaultSessionCacheTTL
	}
	s := &Server{
		cfg:        cfg,
		meta:       cfg.Meta,
		blobs:      cfg.Blobs,
		log:        cfg.Logger,
		notify:     cfg.Notifier,
		metrics:    newMetrics(),
		challenges: newChallengeSet(),
		closing:    make(chan struct{}),
	}
	if cfg.MaxActive >= 0 {
		s.admit = newAdmission(cfg.MaxActive, cfg.MaxQueued)
	}
	if cfg.CommitPhases {
		s.phases = &commitPhases{}
	}
	if cfg.SessionCacheTTL > 0 {
		s.sessions = newSessionCache(cfg.SessionCacheTTL)
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

// MetricsHandler serves the Prometheus metrics (text format 0.0.4) on any path.
func (s *Server) MetricsHandler() http.Handler { return http.HandlerFunc(s.handleMetrics) }

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
	mux.HandleFunc("GET /readyz", s.handleReady)
	if !s.cfg.PrivateMetrics {
		mux.HandleFunc("GET /metrics", s.handleMetrics)
	}

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
	mux.Handle("PUT /v1/trees/{tree}/blobs/{id}", s.authed(s.handleBlobPut))
	mux.Handle("POST /v1/blobs/check", s.authed(s.handleBlobCheck))
	mux.Handle("GET /v1/blobs/{id}", s.authed(s.handleBlobGet))

	// Trees (trees.go, commit.go).
	mux.Handle("GET /v1/trees/{tree}/head", s.authed(s.handleHead))
	mux.Handle("GET /v1/trees/{tree}/folders/{folder}", s.authed(s.handleListing))
	mux.Handle("GET /v1/trees/{tree}/nodes/{node}/versions", s.authed(s.handleVersions))
	mux.Handle(commitPattern, s.authed(s.handleCommit))

	// Change feed (changes.go).
	mux.Handle("GET /v1/changes", s.authed(s.handleChanges))
	mux.Handle("GET /v1/changes/stream", s.authed(s.handleChangeStream))

	// Head history and gossip (heads.go).
	s.headRoutes(mux)

	// Public links (links.go).
	s.linkRoutes(mux)

	// Shared folders (shares.go, shares_members.go).
	s.shareRoutes(mux)

	return s.middleware(mux)
}
