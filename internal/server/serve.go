package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"coffer/internal/metastore"
	"coffer/internal/metastore/postgres"
	"coffer/internal/metastore/sqlite"
)

// Serve defaults and timeouts.
const (
	DefaultListen   = "127.0.0.1:8420"
	shutdownTimeout = 30 * time.Second
	secretFile      = "server.secret"
	metaFile        = "meta.db"
)

// ServeConfig configures Serve.
type ServeConfig struct {
	// DataDir holds meta.db, blobs/ and server.secret. It is created (0700) if missing. With
	// DB and Blobs elsewhere and DB on PostgreSQL (shared secret) it is not used.
	DataDir string
	// DB and Blobs select the stores (see StoreConfig); empty means inside DataDir.
	DB, Blobs string
	// Listen is the TCP address (default 127.0.0.1:8420; port 0 picks a free port).
	Listen string
	// TLSCert and TLSKey are PEM files; both or neither. With them Serve speaks HTTPS.
	TLSCert, TLSKey string
	InviteOnly      bool
	DefaultQuota    int64 // bytes per new account; 0 = unlimited
	// KeepVersions is taken literally: replaced file records kept per node, 0 keeps none (unlike
	// Config, where 0 means the default). CLIs pass DefaultKeepVersions unless told otherwise.
	KeepVersions int
	Logger       *slog.Logger
	// MetricsListen, if set, is a separate TCP address serving GET /metrics and the Go profiler
	// (/debug/pprof/, with block and mutex sampling switched on; plain HTTP: keep it private),
	// and the main listener then does not serve /metrics.
	MetricsListen string
	// MaxActive is Config.MaxActive (0: the default; negative: no admission control).
	MaxActive int
	// OnListen, if set, is called with the base URL once the listener is open (tests, CLIs).
	OnListen func(url string)
}

// Serve runs a server on the configured stores (by default the embedded ones in DataDir) until
// ctx is cancelled, then shuts down gracefully: it stops accepting, ends change streams, waits up
// to 30 s for in-flight requests and closes the stores. It returns nil after a clean shutdown.
// With PostgreSQL it also starts the multi-node coordination (internal/notify), so any number of
// nodes can serve the same database and blob store.
func Serve(ctx context.Context, cfg ServeConfig) (err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("server: serve: TLS needs both a certificate and a key")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	stores, err := OpenStores(ctx, StoreConfig{DataDir: cfg.DataDir, DB: cfg.DB, Blobs: cfg.Blobs, Cluster: true, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := stores.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	secret, err := stores.Secret(ctx, log)
	if err != nil {
		return err
	}
	keep := cfg.KeepVersions
	if keep == 0 {
		keep = -1 // Config: negative keeps none
	}
	scfg := Config{
		Meta: stores.Meta, Blobs: stores.Blobs, Logger: log, Secret: secret,
		InviteOnly: cfg.InviteOnly, DefaultQuota: cfg.DefaultQuota, KeepVersions: keep,
		PrivateMetrics: cfg.MetricsListen != "", CommitPhases: cfg.MetricsListen != "", MaxActive: cfg.MaxActive,
	}
	stores.apply(&scfg)
	srv, err := New(scfg)
	if err != nil {
		return err
	}
	defer srv.Close()

	var tlsConfig *tls.Config
	scheme := "http"
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("server: TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	url := scheme + "://" + ln.Addr().String()
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		TLSConfig:         tlsConfig,
	}
	hs.RegisterOnShutdown(func() { srv.Close() })

	gcCtx, stopGC := context.WithCancel(ctx)
	gcDone := make(chan struct{})
	go func() { defer close(gcDone); srv.RunGC(gcCtx) }()
	defer func() { stopGC(); <-gcDone }()

	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("server: metrics listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		mux.Handle("GET /debug/commit-phases", srv.CommitPhasesHandler())
		profileRoutes(mux)
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		go ms.Serve(mln)
		defer ms.Close()
		log.Info("metrics listening", "url", "http://"+mln.Addr().String()+"/metrics")
	}

	// Announce before serving: the listener is open (connections wait in its backlog), so whoever
	// waits for the announcement never sees an answer first.
	log.Info("listening", "url", url, "db", stores.DB, "blobs", stores.BlobsDesc, "invite_only", cfg.InviteOnly,
		"multi_node", stores.Cluster != nil)
	if cfg.OnListen != nil {
		cfg.OnListen(url)
	}
	serveErr := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			serveErr <- hs.ServeTLS(ln, "", "")
		} else {
			serveErr <- hs.Serve(ln)
		}
	}()

	select {
	case err := <-serveErr:
		return fmt.Errorf("server: serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown: in-flight requests cut off", "err", err)
		hs.Close()
	}
	<-serveErr
	log.Info("stopped")
	return nil
}

// loadSecret reads the 32-byte server secret (hex), creating it with mode 0600 if absent.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		secret := make([]byte, 32)
		rand.Read(secret)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("server: create secret: %w", err)
		}
		_, werr := io.WriteString(f, hex.EncodeToString(secret)+"\n")
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return nil, fmt.Errorf("server: write secret: %w", werr)
		}
		return secret, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server: read secret: %w", err)
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(secret) != 32 {
		return nil, fmt.Errorf("server: secret %s: want 64 hex digits", path)
	}
	return secret, nil
}

// CreateInvite stores a new single-use invite code in dataDir's metadata store and returns it.
// It opens the store directly, so it works while no server runs (SQLite also allows it while one
// does).
func CreateInvite(ctx context.Context, dataDir string) (string, error) {
	return CreateInviteIn(ctx, StoreConfig{DataDir: dataDir})
}

// CreateInviteIn is CreateInvite on the metadata store cfg names (cfg.Blobs is not opened).
func CreateInviteIn(ctx context.Context, cfg StoreConfig) (string, error) {
	meta, err := openMeta(ctx, cfg, "invite")
	if err != nil {
		return "", err
	}
	defer meta.Close()
	var b [15]byte
	rand.Read(b[:])
	code := strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
	if err := meta.CreateInvite(ctx, code, time.Now()); err != nil {
		return "", fmt.Errorf("server: invite: %w", err)
	}
	return code, nil
}

// openMeta opens only the metadata store of an existing server, for admin tools: the default
// SQLite file must exist already (a typo in --data must not create an empty server).
func openMeta(ctx context.Context, cfg StoreConfig, what string) (metastore.Store, error) {
	if cfg.DB == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, metaFile)); err != nil {
			return nil, fmt.Errorf("server: %s: no server data in %s (run the server once first): %w", what, cfg.DataDir, err)
		}
	}
	kind, loc, err := ParseDBURL(cfg.DB)
	if err != nil {
		return nil, err
	}
	if kind == "postgres" {
		m, err := postgres.Open(ctx, loc, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("server: %s: %s: %w", what, RedactDB(cfg.DB), err)
		}
		return m, nil
	}
	if loc == "" {
		loc = filepath.Join(cfg.DataDir, metaFile)
	}
	m, err := sqlite.Open(ctx, loc, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", what, err)
	}
	return m, nil
}
