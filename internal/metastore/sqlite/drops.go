package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

var _ metastore.Drops = (*Store)(nil)

// CreateDrop implements metastore.Drops.
func (s *Store) CreateDrop(ctx context.Context, d metastore.Drop, now time.Time) (metastore.Link, error) {
	if d.Created.IsZero() {
		return metastore.Link{}, fmt.Errorf("sqlite: create drop: zero creation time: %w", coffer.ErrInvalid)
	}
	var l metastore.Link
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		l, err = scanLink(tx.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM links WHERE id = ?`, d.Link[:]))
		if err != nil {
			return notFound(err, "create drop: link")
		}
		if l.Owner != d.Owner {
			return fmt.Errorf("sqlite: create drop: link of another account: %w", coffer.ErrNotFound)
		}
		if !l.Usable(now) {
			return fmt.Errorf("sqlite: create drop: link revoked, expired or used up: %w", coffer.ErrForbidden)
		}
		for _, b := range d.Blobs {
			var owner []byte
			err := tx.QueryRowContext(ctx, `SELECT owner FROM blobs WHERE id = ?`, b[:]).Scan(&owner)
			if errors.Is(err, sql.ErrNoRows) || (err == nil && !bytes.Equal(owner, d.Owner[:])) {
				return fmt.Errorf("sqlite: create drop: blob %s: %w", b, coffer.ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("sqlite: create drop: blob: %w", err)
			}
		}
		var quota, used, pending int64
		if err := tx.QueryRowContext(ctx, `SELECT a.quota, COALESCE(u.bytes, 0),
			COALESCE((SELECT SUM(length(record)) FROM drops WHERE owner = a.id), 0)
			FROM accounts a LEFT JOIN usage u ON u.account = a.id WHERE a.id = ?`, d.Owner[:]).Scan(&quota, &used, &pending); err != nil {
			return notFound(err, "create drop: owner %s", d.Owner)
		}
		if quota > 0 && used+pending+int64(len(d.Record)) > quota {
			return fmt.Errorf("sqlite: create drop: %d bytes used + %d pending + %d > quota %d: %w",
				used, pending, len(d.Record), quota, coffer.ErrQuota)
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM drops WHERE id = ?`, d.ID[:]); err != nil || ok {
			return cmp(err, fmt.Errorf("sqlite: create drop: id taken: %w", coffer.ErrExist))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO drops (id, link, owner, record, created) VALUES (?, ?, ?, ?, ?)`,
			d.ID[:], d.Link[:], d.Owner[:], blob(d.Record), d.Created.UnixNano()); err != nil {
			return fmt.Errorf("sqlite: create drop: %w", err)
		}
		for _, b := range d.Blobs {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO drop_blobs (drop_id, blob) VALUES (?, ?)`, d.ID[:], b[:]); err != nil {
				return fmt.Errorf("sqlite: create drop: blobs: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE links SET uploads = uploads + 1 WHERE id = ?`, d.Link[:]); err != nil {
			return fmt.Errorf("sqlite: create drop: count: %w", err)
		}
		l.Uploads++
		return nil
	})
	if err != nil {
		return metastore.Link{}, err
	}
	return l, nil
}

// Drops implements metastore.Drops.
func (s *Store) Drops(ctx context.Context, owner coffer.AccountID, after int64, limit int) ([]metastore.Drop, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlite: drops: limit %d: %w", limit, coffer.ErrInvalid)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, link, record, created FROM drops
		WHERE owner = ? AND seq > ? ORDER BY seq LIMIT ?`, owner[:], after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: drops: %w", err)
	}
	var out []metastore.Drop
	for rows.Next() {
		var (
			d        = metastore.Drop{Owner: owner}
			id, link []byte
			created  int64
		)
		if err := rows.Scan(&d.Seq, &id, &link, &d.Record, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: drops: %w", err)
		}
		if err := errors.Join(setID(d.ID[:], id, "drop id"), setID(d.Link[:], link, "drop link")); err != nil {
			rows.Close()
			return nil, err
		}
		d.Created = time.Unix(0, created).UTC()
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: drops: %w", err)
	}
	for i := range out {
		if out[i].Blobs, err = s.dropBlobs(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) dropBlobs(ctx context.Context, id [16]byte) ([]coffer.BlobID, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT blob FROM drop_blobs WHERE drop_id = ? ORDER BY blob`, id[:])
	if err != nil {
		return nil, fmt.Errorf("sqlite: drop blobs: %w", err)
	}
	defer rows.Close()
	var out []coffer.BlobID
	for rows.Next() {
		var raw []byte
		var b coffer.BlobID
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("sqlite: drop blobs: %w", err)
		}
		if err := setID(b[:], raw, "drop blob"); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: drop blobs: %w", err)
	}
	return out, nil
}

// DeleteDrop implements metastore.Drops.
func (s *Store) DeleteDrop(ctx context.Context, owner coffer.AccountID, id [16]byte) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM drops WHERE id = ? AND owner = ?`, id[:], owner[:]); err != nil || !ok {
			return cmp(err, fmt.Errorf("sqlite: delete drop: %w", coffer.ErrNotFound))
		}
		// drop_blobs first, explicitly, so that its trigger releases the blob references.
		if _, err := tx.ExecContext(ctx, `DELETE FROM drop_blobs WHERE drop_id = ?`, id[:]); err != nil {
			return fmt.Errorf("sqlite: delete drop: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM drops WHERE id = ?`, id[:]); err != nil {
			return fmt.Errorf("sqlite: delete drop: %w", err)
		}
		return nil
	})
}

// DeleteDrops implements metastore.Drops.
func (s *Store) DeleteDrops(ctx context.Context, owner coffer.AccountID, ids [][16]byte) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, id := range ids {
			ok, err := exists(ctx, tx, `SELECT 1 FROM drops WHERE id = ? AND owner = ?`, id[:], owner[:])
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM drop_blobs WHERE drop_id = ?`, id[:]); err != nil {
				return fmt.Errorf("sqlite: delete drops: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM drops WHERE id = ?`, id[:]); err != nil {
				return fmt.Errorf("sqlite: delete drops: %w", err)
			}
			n++
		}
		return nil
	})
	return n, err
}

// PendingDrops implements metastore.Drops.
func (s *Store) PendingDrops(ctx context.Context, owner coffer.AccountID) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM drops WHERE owner = ?`, owner[:]).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: pending drops: %w", err)
	}
	return n, nil
}
