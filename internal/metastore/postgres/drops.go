package postgres

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"coffer"
	"coffer/internal/metastore"
)

var _ metastore.Drops = (*Store)(nil)

// CreateDrop implements metastore.Drops. The link row lock (FOR UPDATE) serialises the uploads of
// one link; the blob rows are locked FOR SHARE, so a garbage collection (which locks its
// candidates FOR UPDATE SKIP LOCKED) either deleted a blob before (the drop is refused) or skips
// it until the drop's reference is committed.
func (s *Store) CreateDrop(ctx context.Context, d metastore.Drop, now time.Time) (metastore.Link, error) {
	if d.Created.IsZero() {
		return metastore.Link{}, fmt.Errorf("postgres: create drop: zero creation time: %w", coffer.ErrInvalid)
	}
	const what = "create drop"
	var l metastore.Link
	err := s.write(ctx, what, func(tx pgx.Tx) error {
		var err error
		l, err = scanLink(tx.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE id = $1 FOR UPDATE`, d.Link[:]))
		if err != nil {
			return notFound(err, what+": link")
		}
		if l.Owner != d.Owner {
			return fmt.Errorf("postgres: create drop: link of another account: %w", coffer.ErrNotFound)
		}
		if !l.Usable(now) {
			return fmt.Errorf("postgres: create drop: link revoked, expired or used up: %w", coffer.ErrForbidden)
		}
		if len(d.Blobs) > 0 {
			ids := make([][]byte, len(d.Blobs))
			for i := range d.Blobs {
				ids[i] = d.Blobs[i][:]
			}
			rows, err := tx.Query(ctx, `SELECT id, owner FROM blobs WHERE id = ANY($1) FOR SHARE`, ids)
			if err != nil {
				return wrap(what+": blobs", err)
			}
			found := map[coffer.BlobID]bool{}
			for rows.Next() {
				var id, owner []byte
				if err := rows.Scan(&id, &owner); err != nil {
					rows.Close()
					return wrap(what+": blobs", err)
				}
				if bytes.Equal(owner, d.Owner[:]) && len(id) == len(coffer.BlobID{}) {
					found[coffer.BlobID(id)] = true
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return wrap(what+": blobs", err)
			}
			for _, b := range d.Blobs {
				if !found[b] {
					return fmt.Errorf("postgres: create drop: blob %s: %w", b, coffer.ErrNotFound)
				}
			}
		}
		var quota, used, pending int64
		if err := tx.QueryRow(ctx, `SELECT a.quota, COALESCE(u.bytes, 0),
			COALESCE((SELECT SUM(length(record)) FROM drops WHERE owner = a.id), 0)::bigint
			FROM accounts a LEFT JOIN usage u ON u.account = a.id WHERE a.id = $1`, d.Owner[:]).Scan(&quota, &used, &pending); err != nil {
			return notFound(err, what+": owner")
		}
		if quota > 0 && used+pending+int64(len(d.Record)) > quota {
			return fmt.Errorf("postgres: create drop: %d bytes used + %d pending + %d > quota %d: %w",
				used, pending, len(d.Record), quota, coffer.ErrQuota)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO drops (id, link, owner, record, created) VALUES ($1, $2, $3, $4, $5)`,
			d.ID[:], d.Link[:], d.Owner[:], blob(d.Record), d.Created); err != nil {
			return wrap(what, err) // a taken ID is a unique violation: ErrExist
		}
		if len(d.Blobs) > 0 {
			ids := make([][]byte, len(d.Blobs))
			for i := range d.Blobs {
				ids[i] = d.Blobs[i][:]
			}
			if _, err := tx.Exec(ctx, `INSERT INTO drop_blobs (drop_id, blob) SELECT $1, b FROM unnest($2::bytea[]) AS u(b)
				ON CONFLICT DO NOTHING`, d.ID[:], ids); err != nil {
				return wrap(what+": blobs", err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE links SET uploads = uploads + 1 WHERE id = $1`, d.Link[:]); err != nil {
			return wrap(what+": count", err)
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
		return nil, fmt.Errorf("postgres: drops: limit %d: %w", limit, coffer.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, `SELECT d.seq, d.id, d.link, d.record, d.created,
		COALESCE((SELECT array_agg(b.blob ORDER BY b.blob) FROM drop_blobs b WHERE b.drop_id = d.id), '{}')
		FROM drops d WHERE d.owner = $1 AND d.seq > $2 ORDER BY d.seq LIMIT $3`, owner[:], after, limit)
	if err != nil {
		return nil, wrap("drops", err)
	}
	defer rows.Close()
	var out []metastore.Drop
	for rows.Next() {
		var (
			d        = metastore.Drop{Owner: owner}
			id, link []byte
			created  pgtype.Timestamptz
			blobs    [][]byte
		)
		if err := rows.Scan(&d.Seq, &id, &link, &d.Record, &created, &blobs); err != nil {
			return nil, wrap("drops", err)
		}
		if err := setID(d.ID[:], id, "drop id"); err != nil {
			return nil, err
		}
		if err := setID(d.Link[:], link, "drop link"); err != nil {
			return nil, err
		}
		for _, raw := range blobs {
			var b coffer.BlobID
			if err := setID(b[:], raw, "drop blob"); err != nil {
				return nil, err
			}
			d.Blobs = append(d.Blobs, b)
		}
		d.Created = fromTS(created)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("drops", err)
	}
	return out, nil
}

// DeleteDrop implements metastore.Drops. Deleting the drop cascades to drop_blobs, whose trigger
// releases the blob references.
func (s *Store) DeleteDrop(ctx context.Context, owner coffer.AccountID, id [16]byte) error {
	ct, err := s.pool.Exec(ctx, `DELETE FROM drops WHERE id = $1 AND owner = $2`, id[:], owner[:])
	if err != nil {
		return wrap("delete drop", err)
	}
	if ct.RowsAffected() != 1 {
		return fmt.Errorf("postgres: delete drop: %w", coffer.ErrNotFound)
	}
	return nil
}

// DeleteDrops implements metastore.Drops.
func (s *Store) DeleteDrops(ctx context.Context, owner coffer.AccountID, ids [][16]byte) (int, error) {
	raw := make([][]byte, len(ids))
	for i := range ids {
		raw[i] = ids[i][:]
	}
	ct, err := s.pool.Exec(ctx, `DELETE FROM drops WHERE owner = $1 AND id = ANY($2)`, owner[:], raw)
	if err != nil {
		return 0, wrap("delete drops", err)
	}
	return int(ct.RowsAffected()), nil
}

// PendingDrops implements metastore.Drops.
func (s *Store) PendingDrops(ctx context.Context, owner coffer.AccountID) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM drops WHERE owner = $1`, owner[:]).Scan(&n); err != nil {
		return 0, wrap("pending drops", err)
	}
	return n, nil
}
