// Package sqlite is the embedded metastore.Store, on one SQLite file (modernc.org/sqlite, no cgo).
//
// Durability: the database runs in WAL mode with synchronous=FULL, so a commit that returned nil
// survives a process kill and a power loss. Writes go through one connection (SQLite has one
// writer anyway, and a single connection makes every write transaction, including the
// read-check-write ones, serial without busy retries); reads use a separate pool of read-only
// connections, which WAL lets run while a write is in progress.
//
// The schema lives in schema/NNNN_*.sql, applied in order at Open inside one transaction and
// recorded in schema_version. Other processes (admin commands) may open the same file while a
// server runs: SQLite's locks serialise their writes with the server's (waiting up to
// busyTimeoutMS).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"coffer"
	"coffer/internal/metastore"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

//go:embed schema/*.sql
var schemaFS embed.FS

// busyTimeoutMS is how long a connection waits for a lock held by another connection.
const busyTimeoutMS = 10_000

// mmapSize is how much of the database file the write connection maps into memory; cacheKiB is
// its page cache. Mapped pages a query touches count as the server's resident memory (listing a
// folder of 100,000 entries touched ~250 MiB with a 1 GiB map), while pread into the bounded page
// cache costs a few milliseconds per such listing, so the map is kept small.
//
// Readers map nothing and keep a smaller cache (readerCacheKiB): every connection that maps the
// file counts the same page-cache pages in the server's RSS again, and up to idleReaders caches
// stay allocated between bursts. With the writer's sizes on the readers too, a 100,000-file put
// left the server at 140-160 MiB; with these, 100-115 MiB, at the same put and listing times and
// load-benchmark throughput (doc/SCALING.md, session 4).
const (
	mmapSize       = 16 << 20
	cacheKiB       = 8 << 10
	readerCacheKiB = 2 << 10
)

// maxReaders bounds the read pool. A caller that runs other queries while iterating Children,
// AllBlobs or ReferencedBlobs holds one reader for the whole iteration. idleReaders are kept open
// between bursts: opening a connection parses the schema and prepares the cached statements again,
// which under load (200 clients, change streams reading the feed) was 7 % of the server's CPU
// when only 2 were kept.
const (
	maxReaders  = 32
	idleReaders = 16
)

// kindFile is format.KindFile: replaced records of this kind go to the version history. (The
// store must not import format; the value is part of the record format and never changes.)
const kindFile = 2

// Store is a metastore.Store on one SQLite database file. It is safe for concurrent use.
type Store struct {
	w   *sql.DB // exactly one connection: every write transaction
	r   *sql.DB // read-only connections
	log *slog.Logger
	// nodeQ is Node's query, prepared once: commit validation runs it per record, and parsing
	// the SQL every time cost more than the lookup.
	nodeQ *sql.Stmt
	// rq and wq prepare every other constant query once, on the readers and on the writer.
	rq, wq *stmtCache
	// wsem (capacity 1) is held by whoever runs a write transaction. database/sql hands a freed
	// connection to a random waiter, which under load gave some writes a tail latency of
	// seconds; goroutines blocked sending on a channel are served in arrival order.
	wsem chan struct{}
	// gqueue holds the writes waiting for a group transaction (group.go), guarded by gmu.
	gmu    sync.Mutex
	gqueue []*groupReq
	groups atomic.Uint64 // group transactions begun (tests check that writes were grouped)
}

var _ metastore.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and applies pending schema migrations.
// logger may be nil. Close the store when done.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open: path %q: want a plain file path without '?' or '#': %w", path, coffer.ErrInvalid)
	}
	pragmas := "?_txlock=immediate" +
		"&_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)" +
		"&_pragma=mmap_size(" + strconv.Itoa(mmapSize) + ")" +
		"&_pragma=cache_size(-" + strconv.Itoa(cacheKiB) + ")"
	w, err := sql.Open("sqlite", path+pragmas)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, log: logger, wq: newStmtCache(w), wsem: make(chan struct{}, 1)}
	// The writer connects first: it switches the file to WAL before any reader opens it.
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	rp := strings.NewReplacer("mmap_size("+strconv.Itoa(mmapSize)+")", "mmap_size(0)",
		"cache_size(-"+strconv.Itoa(cacheKiB)+")", "cache_size(-"+strconv.Itoa(readerCacheKiB)+")").Replace(pragmas)
	r, err := sql.Open("sqlite", path+rp+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	r.SetMaxOpenConns(maxReaders)
	r.SetMaxIdleConns(idleReaders)
	r.SetConnMaxIdleTime(5 * time.Minute)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open: readers: %w", err)
	}
	s.r, s.rq = r, newStmtCache(r)
	if s.nodeQ, err = r.PrepareContext(ctx, nodeQuery); err != nil {
		s.rq.close()
		s.wq.close()
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open: prepare: %w", err)
	}
	return s, nil
}

// Close closes every connection. (SQLite checkpoints the WAL into the database file when the
// last connection to it closes.)
func (s *Store) Close() error {
	if err := errors.Join(s.nodeQ.Close(), s.rq.close(), s.wq.close(), s.r.Close(), s.w.Close()); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// migration is one numbered schema file.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(schemaFS, "schema")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("schema file %q: want NNNN_name.sql", e.Name())
		}
		b, err := schemaFS.ReadFile("schema/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("schema file %q: versions must be 1, 2, 3… without gaps", m.name)
		}
	}
	return out, nil
}

// migrate applies every migration newer than the database's schema version, all in one
// transaction. Running it again is a no-op. A database newer than this binary is refused.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version INTEGER NOT NULL PRIMARY KEY,
			applied INTEGER NOT NULL
		) STRICT`); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		var cur int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur); err != nil {
			return fmt.Errorf("sqlite: migrate: read version: %w", err)
		}
		if cur > len(ms) {
			return fmt.Errorf("sqlite: migrate: database schema version %d is newer than this program's %d: %w",
				cur, len(ms), coffer.ErrInvalid)
		}
		for _, m := range ms[cur:] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("sqlite: migrate: %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied) VALUES (?, ?)`,
				m.version, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("sqlite: migrate: %s: %w", m.name, err)
			}
			s.log.Info("sqlite: applied schema migration", "version", m.version, "file", m.name)
		}
		return nil
	})
}

// schemaVersion returns the database's schema version.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return v, err
}

// write runs fn in a write transaction (BEGIN IMMEDIATE on the single write connection) and
// commits it if fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := s.lockWriter(ctx); err != nil {
		return err
	}
	defer s.unlockWriter()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	if s.wq != nil {
		s.wq.preparePending(ctx) // statements first used in this transaction
	}
	return nil
}

// ---- value conversions ----

// nanos encodes a time; the zero time is NULL.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// fromNanos decodes nanos.
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// blob returns b, or an empty non-nil slice for nil, for NOT NULL BLOB columns.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// u64 converts a uint64 for an INTEGER column (SQLite integers are signed 64-bit).
func u64(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("sqlite: %s %d too large: %w", what, v, coffer.ErrInvalid)
	}
	return int64(v), nil
}

// setID copies a fixed-size ID read from a BLOB column into dst, checking its length.
func setID(dst, b []byte, what string) error {
	if len(b) != len(dst) {
		return fmt.Errorf("sqlite: stored %s has %d bytes, want %d: %w", what, len(b), len(dst), coffer.ErrCorrupt)
	}
	copy(dst, b)
	return nil
}

// notFound maps sql.ErrNoRows to an error wrapping coffer.ErrNotFound.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: "+format+": %w", append(args, coffer.ErrNotFound)...)
	}
	return fmt.Errorf("sqlite: "+format+": %w", append(args, err)...)
}

// affected returns how many rows res changed.
func affected(res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: rows affected: %w", err)
	}
	return n, nil
}
