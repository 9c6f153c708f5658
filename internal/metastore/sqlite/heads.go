package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

var _ metastore.HeadHistory = (*Store)(nil)

// Heads implements metastore.HeadHistory: the heads are the change feed's (changes_tree_version).
func (s *Store) Heads(ctx context.Context, tree coffer.TreeID, from, to uint64, limit int) ([][]byte, error) {
	if from == 0 || to < from || limit <= 0 {
		return nil, fmt.Errorf("sqlite: heads: from %d to %d limit %d: %w", from, to, limit, coffer.ErrInvalid)
	}
	lo, err := u64("from", from)
	if err != nil {
		return nil, err
	}
	hi, err := u64("to", min(to, 1<<63-1))
	if err != nil {
		return nil, err
	}
	if ok, err := exists(ctx, s.r, `SELECT 1 FROM trees WHERE id = ?`, tree[:]); err != nil || !ok {
		return nil, cmp(err, fmt.Errorf("sqlite: heads of tree %s: %w", tree, coffer.ErrNotFound))
	}
	// A shared tree's commit is in the feed of every accepted member: one row per account, the
	// same head in each.
	rows, err := s.r.QueryContext(ctx, `SELECT min(head) FROM changes WHERE tree = ? AND version BETWEEN ? AND ?
		GROUP BY version ORDER BY version LIMIT ?`, tree[:], lo, hi, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: heads: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("sqlite: heads: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: heads: %w", err)
	}
	return out, nil
}

// PublishSeen implements metastore.HeadHistory.
func (s *Store) PublishSeen(ctx context.Context, p metastore.SeenHead) error {
	if p.Session == "" || len(p.Head) == 0 || p.Version == 0 || p.Published.IsZero() {
		return fmt.Errorf("sqlite: publish seen head: empty session, head, version or time: %w", coffer.ErrInvalid)
	}
	v, err := u64("version", p.Version)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM trees WHERE id = ?`, p.Tree[:]); err != nil || !ok {
			return cmp(err, fmt.Errorf("sqlite: publish seen head: tree %s: %w", p.Tree, coffer.ErrNotFound))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO seen_heads (tree, session, device, version, head, published)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tree, session) DO UPDATE SET device = excluded.device,
			version = excluded.version, head = excluded.head, published = excluded.published`,
			p.Tree[:], p.Session, p.Device, v, p.Head, p.Published.UnixNano()); err != nil {
			return fmt.Errorf("sqlite: publish seen head: %w", err)
		}
		return nil
	})
}

// SeenHeads implements metastore.HeadHistory.
func (s *Store) SeenHeads(ctx context.Context, tree coffer.TreeID, limit int) ([]metastore.SeenHead, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlite: seen heads: limit %d: %w", limit, coffer.ErrInvalid)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT session, device, version, head, published FROM seen_heads
		WHERE tree = ? ORDER BY published DESC, session LIMIT ?`, tree[:], limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: seen heads: %w", err)
	}
	defer rows.Close()
	var out []metastore.SeenHead
	for rows.Next() {
		p := metastore.SeenHead{Tree: tree}
		var v, published int64
		if err := rows.Scan(&p.Session, &p.Device, &v, &p.Head, &published); err != nil {
			return nil, fmt.Errorf("sqlite: seen heads: %w", err)
		}
		p.Version, p.Published = uint64(v), time.Unix(0, published).UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: seen heads: %w", err)
	}
	return out, nil
}
