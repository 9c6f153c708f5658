package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"coffer"
	"coffer/internal/metastore"
)

var _ metastore.HeadHistory = (*Store)(nil)

// treeExists reports whether tree is stored (outside a transaction).
func (s *Store) treeExists(ctx context.Context, what string, tree coffer.TreeID) error {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM trees WHERE id = $1`, tree[:]).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: tree %s: %w", what, tree, coffer.ErrNotFound)
	}
	return wrap(what, err)
}

// Heads implements metastore.HeadHistory: the heads are the change feed's (changes_tree_version).
func (s *Store) Heads(ctx context.Context, tree coffer.TreeID, from, to uint64, limit int) ([][]byte, error) {
	if from == 0 || to < from || limit <= 0 {
		return nil, fmt.Errorf("postgres: heads: from %d to %d limit %d: %w", from, to, limit, coffer.ErrInvalid)
	}
	lo, err := i64("from", from)
	if err != nil {
		return nil, err
	}
	hi, _ := i64("to", min(to, math.MaxInt64))
	if err := s.treeExists(ctx, "heads", tree); err != nil {
		return nil, err
	}
	// A shared tree's commit is in the feed of every accepted member: one row per account, the
	// same head in each.
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (version) head FROM changes
		WHERE tree = $1 AND version BETWEEN $2 AND $3 ORDER BY version, seq LIMIT $4`, tree[:], lo, hi, limit)
	if err != nil {
		return nil, wrap("heads", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, wrap("heads", err)
	}
	return out, nil
}

// PublishSeen implements metastore.HeadHistory.
func (s *Store) PublishSeen(ctx context.Context, p metastore.SeenHead) error {
	if p.Session == "" || len(p.Head) == 0 || p.Version == 0 || p.Published.IsZero() {
		return fmt.Errorf("postgres: publish seen head: empty session, head, version or time: %w", coffer.ErrInvalid)
	}
	v, err := i64("version", p.Version)
	if err != nil {
		return err
	}
	const what = "publish seen head"
	if err := s.treeExists(ctx, what, p.Tree); err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO seen_heads (tree, session, device, version, head, published)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tree, session) DO UPDATE SET device = excluded.device,
		version = excluded.version, head = excluded.head, published = excluded.published`,
		p.Tree[:], p.Session, p.Device, v, p.Head, p.Published)
	return wrap(what, err)
}

// SeenHeads implements metastore.HeadHistory.
func (s *Store) SeenHeads(ctx context.Context, tree coffer.TreeID, limit int) ([]metastore.SeenHead, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("postgres: seen heads: limit %d: %w", limit, coffer.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, `SELECT session, device, version, head, published FROM seen_heads
		WHERE tree = $1 ORDER BY published DESC, session LIMIT $2`, tree[:], limit)
	if err != nil {
		return nil, wrap("seen heads", err)
	}
	defer rows.Close()
	var out []metastore.SeenHead
	for rows.Next() {
		p := metastore.SeenHead{Tree: tree}
		var v int64
		var published time.Time
		if err := rows.Scan(&p.Session, &p.Device, &v, &p.Head, &published); err != nil {
			return nil, wrap("seen heads", err)
		}
		p.Version, p.Published = uint64(v), published.UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("seen heads", err)
	}
	return out, nil
}
