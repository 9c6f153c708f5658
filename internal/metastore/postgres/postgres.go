// Package postgres is a metastore.Store on PostgreSQL (pgx/v5 with a pgxpool connection pool),
// for deployments that run several server nodes against one database or want PostgreSQL's
// operations tooling. It behaves exactly as the embedded sqlite store: both pass
// metastoretest.Run.
//
// Transactions run at READ COMMITTED. Commit takes the tree's row lock (SELECT … FOR UPDATE) for
// the compare-and-swap on the head, then the owner's change-feed row, so one account's commits are
// serialised while different accounts commit in parallel. Garbage collection and commits agree
// through row locks on the blobs rows (see CollectableBlobs), so a blob is either referenced by a
// commit or collected, never both.
//
// The schema lives in schema/NNNN_*.sql, applied in order at Open in one transaction that first
// takes a transaction-scoped advisory lock, so server nodes starting at once apply each
// migration exactly once. Applied versions are recorded in coffer_schema_version.
//
// Times are stored as timestamptz, which has microsecond resolution: a time read back is the
// written time truncated to the microsecond.
//
// Requirements: PostgreSQL 11 or newer; a role that may create tables, functions and triggers in
// the first schema of its search_path (on PostgreSQL 15 and later, make it the database's owner,
// or give it a schema of its own and select that with search_path=… in the DSN). Statements are
// prepared and cached per connection; behind a transaction-pooling PgBouncer add
// default_query_exec_mode=exec to the DSN.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"coffer"
	"coffer/internal/metastore"
)

//go:embed schema/*.sql
var schemaFS embed.FS

// migrateLockKey is the pg_advisory_xact_lock key that serialises schema migrations between
// processes opening the same database ("coffer" in ASCII, then 1).
const migrateLockKey int64 = 0x636f66666572_0001

// defaultMaxConns is the pool size unless the DSN sets pool_max_conns. A caller that runs other
// queries while iterating Children, AllTrees, AllBlobs or ReferencedBlobs holds one connection for
// the whole iteration.
const defaultMaxConns = 16

// kindFile is format.KindFile: replaced records of this kind go to the version history.
const kindFile = metastore.KindFile

// Store is a metastore.Store on one PostgreSQL database. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

var _ metastore.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a key=value connection
// string, as libpq; pool_* parameters configure the pool) and applies pending schema migrations.
// The database must exist. logger may be nil. Close the store when done.
//
// Errors: ErrInvalid for a malformed DSN or a database whose schema is newer than this program;
// ErrUnavailable (wrapped with the cause) if the server cannot be reached.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if strings.TrimSpace(dsn) == "" {
		return nil, fmt.Errorf("postgres: open: empty DSN: %w", coffer.ErrInvalid)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included: do not pass it on.
		return nil, fmt.Errorf("postgres: open: malformed DSN (want postgres://user@host:port/db?… or key=value pairs): %w",
			coffer.ErrInvalid)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, log: logger}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, wrap("open: connect", err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every connection, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
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
// transaction holding the migration advisory lock. Running it again, or in several processes at
// once, is safe. A database newer than this binary is refused.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return s.write(ctx, "migrate", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return wrap("migrate: lock", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS coffer_schema_version (
			version integer     NOT NULL PRIMARY KEY,
			applied timestamptz NOT NULL
		)`); err != nil {
			return wrap("migrate", err)
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM coffer_schema_version`).Scan(&cur); err != nil {
			return wrap("migrate: read version", err)
		}
		if cur > len(ms) {
			return fmt.Errorf("postgres: migrate: database schema version %d is newer than this program's %d: %w",
				cur, len(ms), coffer.ErrInvalid)
		}
		for _, m := range ms[cur:] {
			// No arguments: pgx sends the file with the simple protocol, several statements at once.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return wrap("migrate: "+m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO coffer_schema_version (version, applied) VALUES ($1, now())`,
				m.version); err != nil {
				return wrap("migrate: "+m.name, err)
			}
			s.log.Info("postgres: applied schema migration", "version", m.version, "file", m.name)
		}
		return nil
	})
}

// schemaVersion returns the database's schema version.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM coffer_schema_version`).Scan(&v)
	return v, err
}

// write runs fn in a READ COMMITTED transaction and commits it if fn returns nil. Errors from fn
// are returned as they are (fn wraps them); begin and commit failures are wrapped with what.
func (s *Store) write(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return wrap(what+": begin", err)
	}
	if err := fn(tx); err != nil {
		// A rollback error adds nothing: the transaction is gone either way.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(what+": commit", err)
	}
	return nil
}

// ---- errors ----

// wrap prefixes err with "postgres: what" and adds the coffer sentinel its cause implies: a
// unique violation is ErrExist; a serialization failure, deadlock, lost connection or exhausted
// server is ErrUnavailable (retry later).
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if sentinel := classify(err); sentinel != nil {
		return fmt.Errorf("postgres: %s: %w: %w", what, sentinel, err)
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// classify returns the coffer sentinel err implies, or nil.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return coffer.ErrExist
		case pe.Code == "40001", pe.Code == "40P01", // serialization_failure, deadlock_detected
			pe.Code == "55P03",                // lock_not_available
			strings.HasPrefix(pe.Code, "08"),  // connection exception
			strings.HasPrefix(pe.Code, "53"),  // insufficient resources (disk full, too many connections)
			strings.HasPrefix(pe.Code, "57P"): // operator intervention (shutdown)
			return coffer.ErrUnavailable
		}
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) {
		return coffer.ErrUnavailable
	}
	return nil
}

// isCode reports whether err is a PostgreSQL error with the given SQLSTATE.
func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// notFound maps pgx.ErrNoRows to an error wrapping coffer.ErrNotFound and wraps anything else.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", what, coffer.ErrNotFound)
	}
	return wrap(what, err)
}

// cmp returns err if it is non-nil, else alt.
func cmp(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// ---- value conversions ----

// ts encodes a time for a timestamptz column; the zero time is NULL.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromTS decodes ts: NULL is the zero time, others are UTC.
func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// blob returns b, or an empty non-nil slice for nil, for NOT NULL bytea columns.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// i64 converts a uint64 for a bigint column.
func i64(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("postgres: %s %d too large: %w", what, v, coffer.ErrInvalid)
	}
	return int64(v), nil
}

// setID copies a fixed-size ID read from a bytea column into dst, checking its length.
func setID(dst, b []byte, what string) error {
	if len(b) != len(dst) {
		return fmt.Errorf("postgres: stored %s has %d bytes, want %d: %w", what, len(b), len(dst), coffer.ErrCorrupt)
	}
	copy(dst, b)
	return nil
}
