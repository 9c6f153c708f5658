// Package notify is the multi-node coordination of Coffer servers that share one PostgreSQL
// database: the change notifier (LISTEN/NOTIFY), the cluster-wide set of spent login challenges,
// the shared server secret and the blob locks that order uploads against garbage collection.
// A single node on SQLite needs none of it (the server's in-process defaults do the same job).
//
// Everything here lives in a few small tables of its own (coffer_cluster_secret,
// coffer_spent_challenges), created at Open if missing, next to the metastore's tables.
//
// NOTIFY payloads carry only "account-hex:seq" on channel coffer_changes: no names, no keys, no
// record bytes. A subscriber that learns of a commit re-reads the change feed from the store.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"coffer"
)

// Channel is the NOTIFY channel carrying "account-hex:seq" payloads.
const Channel = "coffer_changes"

// Resync is the seq delivered to every subscriber after the LISTEN connection was re-established:
// notifications may have been lost while it was down, so every stream must re-read its feed.
const Resync = coffer.Seq(math.MaxUint64)

// Lock keys: pg_advisory_lock keys of this package ("coffer" in ASCII, then 0x02xx).
const (
	setupLockKey    int64 = 0x636f66666572_0200
	blobLockKeyBase int64 = 0x636f66666572_1000 // + first byte of the blob ID
)

// Reconnect back-off of the LISTEN connection.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	pruneEvery = time.Minute
)

// PG coordinates the nodes sharing one PostgreSQL database. Create it with Open; it is safe for
// concurrent use. It implements the server's Notifier, ChallengeSpender and BlobLocker.
type PG struct {
	pool   *pgxpool.Pool // NOTIFY, challenges, secret
	locks  *pgxpool.Pool // sessions holding advisory blob locks (never waits on pool)
	listen *pgx.ConnConfig
	log    *slog.Logger

	mu     sync.Mutex
	subs   map[coffer.AccountID]map[*sub]struct{}
	closed bool

	nextPrune atomic.Int64 // unix nanos
	connected atomic.Bool  // the LISTEN connection is up
	cancel    context.CancelFunc
	done      chan struct{}
}

type sub struct{ ch chan coffer.Seq }

// Open connects to the database named by dsn (the metastore's DSN), creates this package's
// tables if missing and starts the LISTEN connection, which reconnects on its own. Close it when
// done. The DSN is never logged.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*PG, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("notify: open: malformed DSN: %w", coffer.ErrInvalid)
	}
	pcfg.MaxConns = 4
	lcfg := pcfg.Copy()
	lcfg.MaxConns = 8
	listen := pcfg.ConnConfig.Copy()
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("notify: open: %w", err)
	}
	locks, err := pgxpool.NewWithConfig(ctx, lcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("notify: open: %w", err)
	}
	p := &PG{pool: pool, locks: locks, listen: listen, log: logger,
		subs: map[coffer.AccountID]map[*sub]struct{}{}, done: make(chan struct{})}
	if err := p.setup(ctx); err != nil {
		pool.Close()
		locks.Close()
		return nil, err
	}
	// The first LISTEN is made here, so that a node is subscribed before it serves.
	conn, err := p.connect(ctx)
	if err != nil {
		pool.Close()
		locks.Close()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	go p.run(lctx, conn)
	return p, nil
}

func (p *PG) setup(ctx context.Context) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("notify: setup: %w: %w", coffer.ErrUnavailable, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, q := range []string{
		`SELECT pg_advisory_xact_lock(` + strconv.FormatInt(setupLockKey, 10) + `)`,
		`CREATE TABLE IF NOT EXISTS coffer_cluster_secret (
			id     integer NOT NULL PRIMARY KEY CHECK (id = 1),
			secret bytea   NOT NULL CHECK (length(secret) = 32)
		)`,
		`CREATE TABLE IF NOT EXISTS coffer_spent_challenges (
			challenge bytea       NOT NULL PRIMARY KEY,
			expires   timestamptz NOT NULL
		)`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("notify: setup: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("notify: setup: %w", err)
	}
	return nil
}

// Secret returns the cluster's 32-byte server secret, creating it on first use, so that every
// node keys login challenges and fake prelogin answers alike.
func (p *PG) Secret(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	rand.Read(fresh)
	if _, err := p.pool.Exec(ctx, `INSERT INTO coffer_cluster_secret (id, secret) VALUES (1, $1)
		ON CONFLICT (id) DO NOTHING`, fresh); err != nil {
		return nil, fmt.Errorf("notify: secret: %w", err)
	}
	var secret []byte
	if err := p.pool.QueryRow(ctx, `SELECT secret FROM coffer_cluster_secret WHERE id = 1`).Scan(&secret); err != nil {
		return nil, fmt.Errorf("notify: secret: %w", err)
	}
	return secret, nil
}

// Close stops the LISTEN connection, closes every subscription and the connection pools.
func (p *PG) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for acct, subs := range p.subs {
		for s := range subs {
			close(s.ch)
		}
		delete(p.subs, acct)
	}
	p.mu.Unlock()
	p.cancel()
	<-p.done
	p.pool.Close()
	p.locks.Close()
	return nil
}

// Connected reports whether the LISTEN connection is currently up (for readiness checks).
func (p *PG) Connected() bool { return p.connected.Load() }

// ---- change notifications ----

// Publish sends "account-hex:seq" on the channel, and delivers it to this node's subscribers
// directly as well (so a node whose LISTEN connection is down still serves its own commits).
func (p *PG) Publish(ctx context.Context, acct coffer.AccountID, seq coffer.Seq) error {
	p.deliver(acct, seq)
	payload := hex.EncodeToString(acct[:]) + ":" + strconv.FormatUint(uint64(seq), 10)
	if _, err := p.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, payload); err != nil {
		return fmt.Errorf("notify: publish: %w", err)
	}
	return nil
}

// Subscribe returns a channel receiving the latest seq announced for acct by any node (or
// Resync after a reconnect) and a cancel function; see the server's Notifier contract.
func (p *PG) Subscribe(ctx context.Context, acct coffer.AccountID) (<-chan coffer.Seq, func()) {
	s := &sub{ch: make(chan coffer.Seq, 1)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	if p.subs[acct] == nil {
		p.subs[acct] = map[*sub]struct{}{}
	}
	p.subs[acct][s] = struct{}{}
	p.mu.Unlock()
	cancel := func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, ok := p.subs[acct][s]; ok {
			delete(p.subs[acct], s)
			if len(p.subs[acct]) == 0 {
				delete(p.subs, acct)
			}
			close(s.ch)
		}
	}
	stop := context.AfterFunc(ctx, cancel)
	return s.ch, func() { stop(); cancel() }
}

// deliver replaces each subscriber's pending value with seq (a larger one wins). It never blocks.
func (p *PG) deliver(acct coffer.AccountID, seq coffer.Seq) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.subs[acct] {
		offer(s.ch, seq)
	}
}

func offer(ch chan coffer.Seq, seq coffer.Seq) {
	select {
	case old := <-ch:
		seq = max(seq, old)
	default:
	}
	ch <- seq // capacity 1 and the caller holds p.mu: never blocks
}

// resyncAll tells every subscriber to re-read its feed.
func (p *PG) resyncAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, subs := range p.subs {
		for s := range subs {
			offer(s.ch, Resync)
		}
	}
}

// connect opens the LISTEN connection.
func (p *PG) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.listen)
	if err != nil {
		return nil, fmt.Errorf("notify: listen: connect: %w: %w", coffer.ErrUnavailable, err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("notify: listen: %w: %w", coffer.ErrUnavailable, err)
	}
	p.connected.Store(true)
	return conn, nil
}

// run receives notifications until ctx ends, reconnecting (and resubscribing) with back-off.
func (p *PG) run(ctx context.Context, conn *pgx.Conn) {
	defer close(p.done)
	backoff := minBackoff
	for {
		if conn == nil {
			c, err := p.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				p.log.Warn("notify: reconnect failed", "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, maxBackoff)
				continue
			}
			conn, backoff = c, minBackoff
			p.log.Info("notify: LISTEN connection re-established")
			p.resyncAll()
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			p.connected.Store(false)
			conn.Close(context.Background())
			conn = nil
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("notify: LISTEN connection lost", "err", err)
			continue
		}
		acct, seq, ok := parsePayload(n.Payload)
		if !ok {
			p.log.Warn("notify: malformed payload ignored", "len", len(n.Payload))
			continue
		}
		p.deliver(acct, seq)
	}
}

// parsePayload parses "account-hex:seq".
func parsePayload(s string) (coffer.AccountID, coffer.Seq, bool) {
	var acct coffer.AccountID
	h, n, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2*len(acct) {
		return acct, 0, false
	}
	if _, err := hex.Decode(acct[:], []byte(h)); err != nil {
		return acct, 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return acct, 0, false
	}
	return acct, coffer.Seq(seq), true
}

// ---- spent login challenges ----

// SpendChallenge records challenge c (valid until expires) as used and reports whether it was
// fresh: exactly one call per challenge, on any node, gets true. Expired entries are pruned at
// most once a minute per node.
func (p *PG) SpendChallenge(ctx context.Context, c [32]byte, expires time.Time) (bool, error) {
	now := time.Now()
	if next := p.nextPrune.Load(); now.UnixNano() >= next && p.nextPrune.CompareAndSwap(next, now.Add(pruneEvery).UnixNano()) {
		if _, err := p.pool.Exec(ctx, `DELETE FROM coffer_spent_challenges WHERE expires < now() - interval '1 minute'`); err != nil {
			p.log.Warn("notify: prune spent challenges", "err", err)
		}
	}
	tag, err := p.pool.Exec(ctx, `INSERT INTO coffer_spent_challenges (challenge, expires) VALUES ($1, $2)
		ON CONFLICT (challenge) DO NOTHING`, c[:], expires)
	if err != nil {
		return false, fmt.Errorf("notify: spend challenge: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ---- blob locks ----

// LockBlob takes the cluster-wide lock of the blob-ID partition b (a blob ID's first byte): a
// session-level advisory lock on a connection of a pool reserved for locks. The returned unlock
// must be called exactly once. If the unlock fails the connection is closed, which releases the
// lock too.
func (p *PG) LockBlob(ctx context.Context, b byte) (func(), error) {
	conn, err := p.locks.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("notify: lock blob: %w", err)
	}
	key := blobLockKeyBase + int64(b)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		// A cancelled wait may leave the connection in an unknown state: do not reuse it.
		conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
		return nil, fmt.Errorf("notify: lock blob: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var ok bool
			if err := conn.QueryRow(uctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&ok); err != nil || !ok {
				p.log.Warn("notify: unlock blob failed; dropping the connection", "err", err)
				conn.Conn().Close(uctx)
			}
			conn.Release()
		})
	}, nil
}
