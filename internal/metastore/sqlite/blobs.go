package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// AddBlob implements metastore.Blobs. ErrNotFound if the owner is not an account, ErrInvalid for
// a negative size, a zero Created or a CRC32C without HasCRC.
func (s *Store) AddBlob(ctx context.Context, b metastore.BlobInfo) error {
	if b.Size < 0 {
		return fmt.Errorf("sqlite: add blob: negative size %d: %w", b.Size, coffer.ErrInvalid)
	}
	if b.Created.IsZero() {
		return fmt.Errorf("sqlite: add blob: zero created time: %w", coffer.ErrInvalid)
	}
	if b.CRC32C != 0 && !b.HasCRC {
		return fmt.Errorf("sqlite: add blob: a CRC-32C without HasCRC: %w", coffer.ErrInvalid)
	}
	wait := ctx
	ctx = context.WithoutCancel(ctx) // a group member's statements must not be interrupted
	return s.writeGrouped(wait, func(tx *sql.Tx) error {
		var owner []byte
		err := s.wq.in(tx).QueryRowContext(ctx, `SELECT owner FROM blobs WHERE id = ?`, b.ID[:]).Scan(&owner)
		switch {
		case err == nil && bytes.Equal(owner, b.Owner[:]):
			// A re-upload: keep it young so that GC does not collect it before the commit.
			if _, err := s.wq.in(tx).ExecContext(ctx, `UPDATE blobs SET created = MAX(created, ?) WHERE id = ?`,
				b.Created.UnixNano(), b.ID[:]); err != nil {
				return fmt.Errorf("sqlite: add blob: %w", err)
			}
			return nil
		case err == nil:
			return fmt.Errorf("sqlite: add blob %s: owned by another account: %w", b.ID, coffer.ErrExist)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: add blob: %w", err)
		}
		var quota, used int64
		err = s.wq.in(tx).QueryRowContext(ctx, `SELECT a.quota, COALESCE(u.bytes, 0) FROM accounts a
			LEFT JOIN usage u ON u.account = a.id WHERE a.id = ?`, b.Owner[:]).Scan(&quota, &used)
		if err != nil {
			return notFound(err, "add blob: owner %s", b.Owner)
		}
		if quota > 0 && used+b.Size > quota {
			return fmt.Errorf("sqlite: add blob: %d bytes used + %d > quota %d: %w", used, b.Size, quota, coffer.ErrQuota)
		}
		if _, err := s.wq.in(tx).ExecContext(ctx, `INSERT INTO blobs (id, owner, size, created, crc32c) VALUES (?, ?, ?, ?, ?)`,
			b.ID[:], b.Owner[:], b.Size, b.Created.UnixNano(), crcValue(b)); err != nil {
			return fmt.Errorf("sqlite: add blob: %w", err)
		}
		if _, err := s.wq.in(tx).ExecContext(ctx, `INSERT INTO usage (account, bytes, count) VALUES (?, ?, 1)
			ON CONFLICT (account) DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1`,
			b.Owner[:], b.Size); err != nil {
			return fmt.Errorf("sqlite: add blob: usage: %w", err)
		}
		return nil
	})
}

// crcValue is b's CRC-32C as a column value: NULL if b has none.
func crcValue(b metastore.BlobInfo) any {
	if !b.HasCRC {
		return nil
	}
	return int64(b.CRC32C)
}

// blobCols are the columns scanBlob reads, in its order.
const blobCols = `id, owner, size, created, crc32c`

func scanBlob(sc interface{ Scan(...any) error }) (metastore.BlobInfo, error) {
	var (
		b         metastore.BlobInfo
		id, owner []byte
		created   int64
		crc       sql.NullInt64
	)
	if err := sc.Scan(&id, &owner, &b.Size, &created, &crc); err != nil {
		return b, err
	}
	b.Created = time.Unix(0, created).UTC()
	if crc.Valid {
		if crc.Int64 < 0 || crc.Int64 > 0xffffffff {
			return b, fmt.Errorf("sqlite: stored blob crc32c %d out of range: %w", crc.Int64, coffer.ErrCorrupt)
		}
		b.CRC32C, b.HasCRC = uint32(crc.Int64), true
	}
	if err := setID(b.ID[:], id, "blob id"); err != nil {
		return b, err
	}
	return b, setID(b.Owner[:], owner, "blob owner")
}

// Blob implements metastore.Blobs.
func (s *Store) Blob(ctx context.Context, id coffer.BlobID) (metastore.BlobInfo, error) {
	b, err := scanBlob(s.rq.QueryRowContext(ctx, `SELECT `+blobCols+` FROM blobs WHERE id = ?`, id[:]))
	if err != nil {
		return metastore.BlobInfo{}, notFound(err, "blob %s", id)
	}
	return b, nil
}

// Usage implements metastore.Blobs. An unknown account uses nothing.
func (s *Store) Usage(ctx context.Context, acct coffer.AccountID) (int64, int64, error) {
	var n, count int64
	err := s.rq.QueryRowContext(ctx, `SELECT bytes, count FROM usage WHERE account = ?`, acct[:]).Scan(&n, &count)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: usage: %w", err)
	}
	return n, count, nil
}

// CollectableBlobs implements metastore.Blobs, oldest first (ErrInvalid for limit <= 0 or a
// zero cutoff). It runs in one write transaction, so no commit can reference a blob between the
// check and the removal.
func (s *Store) CollectableBlobs(ctx context.Context, cutoff time.Time, limit int) ([]metastore.BlobInfo, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlite: collectable blobs: limit %d: %w", limit, coffer.ErrInvalid)
	}
	if cutoff.IsZero() {
		return nil, fmt.Errorf("sqlite: collectable blobs: zero cutoff: %w", coffer.ErrInvalid)
	}
	var out []metastore.BlobInfo
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		// refs (raised by commits, lowered by a trigger) finds the candidates through a partial index; the NOT EXISTS
		// re-checks each one, so a wrong count could only delay collection, never lose data.
		rows, err := s.wq.in(tx).QueryContext(ctx, `SELECT `+blobCols+` FROM blobs
			WHERE refs = 0 AND created < ? AND NOT EXISTS (SELECT 1 FROM node_blobs nb WHERE nb.blob = blobs.id)
			ORDER BY created, id LIMIT ?`, cutoff.UnixNano(), limit)
		if err != nil {
			return fmt.Errorf("sqlite: collectable blobs: %w", err)
		}
		for rows.Next() {
			b, err := scanBlob(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: collectable blobs: %w", err)
			}
			out = append(out, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: collectable blobs: %w", err)
		}
		for _, b := range out {
			if _, err := s.wq.in(tx).ExecContext(ctx, `DELETE FROM blobs WHERE id = ?`, b.ID[:]); err != nil {
				return fmt.Errorf("sqlite: collectable blobs: delete: %w", err)
			}
			if _, err := s.wq.in(tx).ExecContext(ctx, `UPDATE usage SET bytes = bytes - ?, count = count - 1 WHERE account = ?`,
				b.Size, b.Owner[:]); err != nil {
				return fmt.Errorf("sqlite: collectable blobs: usage: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AllBlobs implements metastore.Blobs, streaming from one read connection.
func (s *Store) AllBlobs(ctx context.Context) iter.Seq2[metastore.BlobInfo, error] {
	return rowsSeq(ctx, s.rq, "all blobs", func(r *sql.Rows) (metastore.BlobInfo, error) { return scanBlob(r) },
		`SELECT `+blobCols+` FROM blobs ORDER BY id`)
}

// ReferencedBlobs implements metastore.Blobs, in ID order, streaming from one read connection.
func (s *Store) ReferencedBlobs(ctx context.Context) iter.Seq2[coffer.BlobID, error] {
	return rowsSeq(ctx, s.rq, "referenced blobs", func(r *sql.Rows) (coffer.BlobID, error) {
		var (
			id  coffer.BlobID
			raw []byte
		)
		if err := r.Scan(&raw); err != nil {
			return id, err
		}
		return id, setID(id[:], raw, "blob id")
	}, `SELECT DISTINCT blob FROM node_blobs ORDER BY blob`)
}
