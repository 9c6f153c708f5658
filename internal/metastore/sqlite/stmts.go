package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// stmtCache prepares each SQL text once per connection of one *sql.DB and keeps it: parsing and
// planning a statement cost SQLite more than running the small lookups and writes of the request
// path (a profile under load found 18 % of the server's CPU in sqlite3_prepare). Only constant
// SQL texts go through it, so it holds a few dozen statements. Safe for concurrent use.
//
// On the single write connection a statement cannot be prepared while a transaction holds that
// connection: a statement first used inside a transaction runs unprepared there and is prepared
// by preparePending once the transaction has ended.
type stmtCache struct {
	db *sql.DB

	mu      sync.RWMutex
	m       map[string]*sql.Stmt
	pending map[string]bool // first used inside a transaction, not prepared yet
	closed  bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// cached returns the prepared statement for q, or nil (and notes q for preparePending).
func (c *stmtCache) cached(q string) *sql.Stmt {
	c.mu.RLock()
	st := c.m[q]
	c.mu.RUnlock()
	if st == nil {
		c.mu.Lock()
		if !c.closed {
			c.pending[q] = true
		}
		c.mu.Unlock()
	}
	return st
}

// preparePending prepares the statements noted by cached. The caller must not hold a
// transaction on c's database (it needs a connection). Failures are left for the next call.
func (c *stmtCache) preparePending(ctx context.Context) {
	c.mu.Lock()
	var qs []string
	for q := range c.pending {
		qs = append(qs, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range qs {
		_, _ = c.stmt(ctx, q)
	}
}

var errStmtCacheClosed = errors.New("sqlite: statement cache closed")

// stmt returns the prepared statement for q, preparing it on first use.
func (c *stmtCache) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.RLock()
	st, ok := c.m[q]
	closed := c.closed
	c.mu.RUnlock()
	if ok {
		return st, nil
	}
	if closed {
		return nil, errStmtCacheClosed
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		st.Close()
		return nil, errStmtCacheClosed
	}
	if prev, ok := c.m[q]; ok { // prepared concurrently
		st.Close()
		return prev, nil
	}
	c.m[q] = st
	return st, nil
}

// QueryRowContext runs q as a cached statement (or, if it cannot be prepared, directly, so that
// the error surfaces through Row.Scan as usual).
func (c *stmtCache) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := c.stmt(ctx, q)
	if err != nil {
		return c.db.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// QueryContext runs q as a cached statement.
func (c *stmtCache) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// in returns the cached statements bound to tx, a transaction on c's database.
func (c *stmtCache) in(tx *sql.Tx) txStmts { return txStmts{c: c, tx: tx} }

// close closes every statement; later calls fail.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	clear(c.m)
	return errors.Join(errs...)
}

// txStmts runs cached statements inside one transaction. (The transaction-bound copies that
// Tx.StmtContext makes reuse the statement already prepared on the transaction's connection,
// and are released when the transaction ends.)
type txStmts struct {
	c  *stmtCache
	tx *sql.Tx
}

// stmt returns q as a statement of the transaction: the cached one if it was prepared,
// otherwise one prepared on the transaction's connection for this transaction only.
func (t txStmts) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := t.c.cached(q); st != nil {
		return t.tx.StmtContext(ctx, st), nil
	}
	return t.tx.PrepareContext(ctx, q)
}

func (t txStmts) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.c.cached(q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t txStmts) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.c.cached(q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t txStmts) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.c.cached(q); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}
