package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"coffer"
	"coffer/internal/blobstore"
	"coffer/internal/blobstore/disk"
	"coffer/internal/blobstore/retry"
	"coffer/internal/blobstore/s3"
	"coffer/internal/metastore"
	"coffer/internal/metastore/postgres"
	"coffer/internal/metastore/sqlite"
	"coffer/internal/notify"
)

// StoreConfig says which stores to open. Every tool that opens a server's stores (serve, admin
// fsck, admin invite, admin migrate) goes through OpenStores with one of these.
type StoreConfig struct {
	// DataDir is the server data directory: the default home of meta.db, the blobs and
	// server.secret. It is only required (and only created) when a store or the secret lives there.
	DataDir string
	// DB selects the metadata store:
	//
	//	""                           DataDir/meta.db (SQLite)
	//	PATH or sqlite:PATH          a SQLite file
	//	postgres://… postgresql://…  PostgreSQL (pool_* parameters tune the pool; see package postgres)
	DB string
	// Blobs selects the blob store:
	//
	//	""                  DataDir/blobs on disk
	//	PATH or file:PATH   a directory on disk (blobs/ and tmp/ inside it)
	//	s3://bucket/prefix?endpoint=host:port&region=name&insecure=1
	//	                    an S3 bucket, wrapped in the retry decorator; credentials come from
	//	                    COFFER_S3_ACCESS_KEY/COFFER_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
	Blobs string
	// Cluster starts the multi-node coordination (internal/notify) when DB is PostgreSQL: the
	// change notifier, shared spent challenges, blob locks and the shared server secret. Serve
	// sets it; one-shot admin tools do not need it.
	Cluster bool
	Logger  *slog.Logger // nil: discard
}

// Stores are the opened stores. Close them when done.
type Stores struct {
	Meta  metastore.Store
	Blobs blobstore.Store
	// Cluster is non-nil when StoreConfig.Cluster was set and DB is PostgreSQL.
	Cluster *notify.PG
	// DB and BlobsDesc describe the stores for logs and messages, without credentials.
	DB, BlobsDesc string
	// Postgres reports whether Meta is PostgreSQL.
	Postgres bool

	dataDir string
}

// OpenStores opens the stores cfg names. Errors name the store and never contain credentials.
func OpenStores(ctx context.Context, cfg StoreConfig) (*Stores, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &Stores{dataDir: cfg.DataDir}
	needDir := func() error {
		if cfg.DataDir == "" {
			return errors.New("server: data directory not set")
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("server: data directory: %w", err)
		}
		return nil
	}
	kind, loc, err := ParseDBURL(cfg.DB)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "postgres":
		st.Postgres = true
		st.DB = RedactDB(cfg.DB)
		meta, err := postgres.Open(ctx, cfg.DB, log)
		if err != nil {
			return nil, fmt.Errorf("server: metadata store %s: %w", st.DB, err)
		}
		st.Meta = meta
		if cfg.Cluster {
			pg, err := notify.Open(ctx, cfg.DB, log)
			if err != nil {
				meta.Close()
				return nil, fmt.Errorf("server: cluster coordination on %s: %w", st.DB, err)
			}
			st.Cluster = pg
		}
	default:
		if loc == "" {
			if err := needDir(); err != nil {
				return nil, err
			}
			loc = filepath.Join(cfg.DataDir, metaFile)
		} else if err := os.MkdirAll(filepath.Dir(loc), 0o700); err != nil {
			return nil, fmt.Errorf("server: metadata store directory: %w", err)
		}
		st.DB = "sqlite:" + loc
		meta, err := sqlite.Open(ctx, loc, log)
		if err != nil {
			return nil, fmt.Errorf("server: metadata store %s: %w", st.DB, err)
		}
		st.Meta = meta
	}
	blobs, desc, err := openBlobs(ctx, cfg, log, needDir)
	if err != nil {
		st.Close()
		return nil, err
	}
	st.Blobs, st.BlobsDesc = blobs, desc
	return st, nil
}

func openBlobs(ctx context.Context, cfg StoreConfig, log *slog.Logger, needDir func() error) (blobstore.Store, string, error) {
	b := cfg.Blobs
	if strings.HasPrefix(b, "s3://") {
		sc, err := s3.ParseURL(b)
		if err != nil {
			return nil, "", fmt.Errorf("server: blob store: %w", err)
		}
		sc.Logger = log
		inner, err := s3.New(ctx, sc)
		if err != nil {
			return nil, "", fmt.Errorf("server: blob store %s: %w", sc, err)
		}
		return retry.New(inner, retry.Config{Logger: log}), sc.String(), nil
	}
	dir, isFile := strings.CutPrefix(b, "file:")
	if isFile {
		dir = strings.TrimPrefix(dir, "//") // file:///srv/blobs
	}
	if strings.Contains(dir, "://") || (isFile && dir == "") {
		return nil, "", fmt.Errorf("server: blob store %q: want a directory, file:PATH or s3://bucket/prefix?…: %w",
			redactURL(b), coffer.ErrInvalid)
	}
	if dir == "" {
		if err := needDir(); err != nil {
			return nil, "", err
		}
		dir = cfg.DataDir
	}
	d, err := disk.New(dir)
	if err != nil {
		return nil, "", fmt.Errorf("server: blob store file:%s: %w", dir, err)
	}
	return d, "file:" + dir, nil
}

// ParseDBURL classifies a --db value: ("postgres", dsn) for postgres:// and postgresql:// URLs,
// ("sqlite", path) for a path or sqlite:PATH ("" path: the data directory's meta.db).
func ParseDBURL(db string) (kind, loc string, err error) {
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return "postgres", db, nil
	case strings.HasPrefix(db, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(db, "sqlite:"), "//")
		if p == "" {
			return "", "", fmt.Errorf("server: --db %q: want sqlite:PATH: %w", db, coffer.ErrInvalid)
		}
		return "sqlite", p, nil
	case strings.Contains(db, "://"):
		return "", "", fmt.Errorf("server: --db %q: want postgres://…, sqlite:PATH or a file path: %w",
			redactURL(db), coffer.ErrInvalid)
	}
	return "sqlite", db, nil
}

// RedactDB returns a database URL without its password, for logs and messages.
func RedactDB(db string) string {
	if k, _, err := ParseDBURL(db); err == nil && k == "sqlite" {
		return db
	}
	return redactURL(db)
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Secret returns the server secret: the cluster's shared one (in PostgreSQL) when Cluster is
// set, else DataDir/server.secret, created on first use.
func (st *Stores) Secret(ctx context.Context, log *slog.Logger) ([]byte, error) {
	if st.Cluster != nil {
		return st.Cluster.Secret(ctx)
	}
	if st.dataDir == "" {
		return nil, errors.New("server: data directory not set (it holds server.secret)")
	}
	if err := os.MkdirAll(st.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	path := filepath.Join(st.dataDir, secretFile)
	secret, err := loadSecret(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && log != nil {
		log.Warn("server secret is readable by other users; chmod 600 it", "file", path)
	}
	return secret, nil
}

// Close closes the coordination and the metadata store (the blob stores hold nothing to close).
func (st *Stores) Close() error {
	var errs []error
	if st.Cluster != nil {
		errs = append(errs, st.Cluster.Close())
	}
	if st.Meta != nil {
		if err := st.Meta.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close metadata store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// apply sets cfg's multi-node hooks from the stores.
func (st *Stores) apply(cfg *Config) {
	if st.Cluster != nil {
		cfg.Notifier = st.Cluster
		cfg.Challenges = st.Cluster
		cfg.BlobLocker = st.Cluster
	}
}
