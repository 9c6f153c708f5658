package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"coffer"
	"coffer/internal/metastore"
)

// errAddRace reports that another transaction inserted or removed the blob AddBlob was adding
// between two of its statements; AddBlob then starts over.
var errAddRace = errors.New("postgres: add blob: concurrent change")

// AddBlob implements metastore.Blobs. ErrNotFound if the owner is not an account, ErrInvalid for
// a negative size, a zero Created or a CRC32C without HasCRC.
//
// Locks: a re-add locks only the blob's row; a new blob is inserted first (a row no other
// transaction can see or lock yet) and then the owner's usage row is updated, whose row lock
// makes the quota check atomic. Garbage collection takes blob rows before usage rows too, so the
// two never wait for each other in a cycle.
func (s *Store) AddBlob(ctx context.Context, b metastore.BlobInfo) error {
	if b.Size < 0 {
		return fmt.Errorf("postgres: add blob: negative size %d: %w", b.Size, coffer.ErrInvalid)
	}
	if b.Created.IsZero() {
		return fmt.Errorf("postgres: add blob: zero created time: %w", coffer.ErrInvalid)
	}
	if b.CRC32C != 0 && !b.HasCRC {
		return fmt.Errorf("postgres: add blob: a CRC-32C without HasCRC: %w", coffer.ErrInvalid)
	}
	for attempt := 0; ; attempt++ {
		err := s.write(ctx, "add blob", func(tx pgx.Tx) error { return addBlobTx(ctx, tx, b) })
		if errors.Is(err, errAddRace) && attempt < 3 {
			continue
		}
		return err
	}
}

func addBlobTx(ctx context.Context, tx pgx.Tx, b metastore.BlobInfo) error {
	// A re-upload: keep it young so that GC does not collect it before the commit.
	ct, err := tx.Exec(ctx, `UPDATE blobs SET created = GREATEST(created, $2) WHERE id = $1 AND owner = $3`,
		b.ID[:], b.Created, b.Owner[:])
	if err != nil {
		return wrap("add blob", err)
	}
	if ct.RowsAffected() == 1 {
		return nil
	}
	ct, err = tx.Exec(ctx, `INSERT INTO blobs (id, owner, size, created, crc32c) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO NOTHING`, b.ID[:], b.Owner[:], b.Size, b.Created, crcValue(b))
	if isCode(err, "23503") { // foreign_key_violation
		return fmt.Errorf("postgres: add blob: owner %s: %w", b.Owner, coffer.ErrNotFound)
	}
	if err != nil {
		return wrap("add blob", err)
	}
	if ct.RowsAffected() == 0 {
		var owner []byte
		err := tx.QueryRow(ctx, `SELECT owner FROM blobs WHERE id = $1`, b.ID[:]).Scan(&owner)
		switch {
		case err == nil && !bytes.Equal(owner, b.Owner[:]):
			return fmt.Errorf("postgres: add blob %s: owned by another account: %w", b.ID, coffer.ErrExist)
		case err == nil || errors.Is(err, pgx.ErrNoRows):
			return errAddRace
		default:
			return wrap("add blob", err)
		}
	}
	// Count it, unless that takes the owner over quota (the row lock of the UPDATE serialises
	// concurrent additions; each sees the bytes the previous one added).
	var used int64
	err = tx.QueryRow(ctx, `UPDATE usage u SET bytes = u.bytes + $2, count = u.count + 1 FROM accounts a
		WHERE u.account = $1 AND a.id = u.account AND (a.quota = 0 OR u.bytes + $2 <= a.quota)
		RETURNING u.bytes`, b.Owner[:], b.Size).Scan(&used)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return wrap("add blob: usage", err)
	}
	var quota int64
	err = tx.QueryRow(ctx, `SELECT a.quota, COALESCE(u.bytes, 0) FROM accounts a LEFT JOIN usage u ON u.account = a.id
		WHERE a.id = $1`, b.Owner[:]).Scan(&quota, &used)
	if err != nil {
		return notFound(err, "add blob: owner "+b.Owner.String())
	}
	return fmt.Errorf("postgres: add blob: %d bytes used + %d > quota %d: %w", used, b.Size, quota, coffer.ErrQuota)
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

func scanBlob(row pgx.Row) (metastore.BlobInfo, error) {
	var (
		b         metastore.BlobInfo
		id, owner []byte
		created   time.Time
		crc       pgtype.Int8
	)
	if err := row.Scan(&id, &owner, &b.Size, &created, &crc); err != nil {
		return b, err
	}
	b.Created = created.UTC()
	if crc.Valid {
		if crc.Int64 < 0 || crc.Int64 > 0xffffffff {
			return b, fmt.Errorf("postgres: stored blob crc32c %d out of range: %w", crc.Int64, coffer.ErrCorrupt)
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
	b, err := scanBlob(s.pool.QueryRow(ctx, `SELECT `+blobCols+` FROM blobs WHERE id = $1`, id[:]))
	if err != nil {
		return metastore.BlobInfo{}, notFound(err, "blob "+id.String())
	}
	return b, nil
}

// Usage implements metastore.Blobs. An unknown account uses nothing.
func (s *Store) Usage(ctx context.Context, acct coffer.AccountID) (int64, int64, error) {
	var n, count int64
	err := s.pool.QueryRow(ctx, `SELECT bytes, count FROM usage WHERE account = $1`, acct[:]).Scan(&n, &count)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, wrap("usage", err)
	}
	return n, count, nil
}

// CollectableBlobs implements metastore.Blobs, oldest first (ErrInvalid for limit <= 0 or a
// zero cutoff). Times are compared at microsecond resolution (both sides truncated), which can
// only keep a blob longer, never collect it early.
//
// Against concurrent commits: it locks its candidates (FOR UPDATE SKIP LOCKED, so blobs a commit
// holds are skipped and concurrent collections share the work), and a candidate whose reference
// count a commit raised in the meantime is re-checked and dropped by PostgreSQL; the DELETE then
// checks node_blobs again in a fresh snapshot. A commit that reaches a locked candidate waits and
// finds it gone. So a blob ends up either referenced or collected, never both.
func (s *Store) CollectableBlobs(ctx context.Context, cutoff time.Time, limit int) ([]metastore.BlobInfo, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("postgres: collectable blobs: limit %d: %w", limit, coffer.ErrInvalid)
	}
	if cutoff.IsZero() {
		return nil, fmt.Errorf("postgres: collectable blobs: zero cutoff: %w", coffer.ErrInvalid)
	}
	const what = "collectable blobs"
	var out []metastore.BlobInfo
	err := s.write(ctx, what, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT id FROM blobs WHERE refs = 0 AND created < $1
			ORDER BY created, id LIMIT $2 FOR UPDATE SKIP LOCKED`, cutoff, int64(limit))
		if err != nil {
			return wrap(what, err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return wrap(what, err)
		}
		if len(ids) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `DELETE FROM blobs b WHERE b.id = ANY($1) AND b.refs = 0
			AND NOT EXISTS (SELECT 1 FROM node_blobs nb WHERE nb.blob = b.id)
			RETURNING `+blobCols, ids)
		if err != nil {
			return wrap(what+": delete", err)
		}
		for rows.Next() {
			b, err := scanBlob(rows)
			if err != nil {
				rows.Close()
				return wrap(what+": delete", err)
			}
			out = append(out, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap(what+": delete", err)
		}
		return subtractUsage(ctx, tx, out)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b metastore.BlobInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out, nil
}

// subtractUsage takes the removed blobs off their owners' usage, locking the usage rows in
// account order so that concurrent collections cannot deadlock.
func subtractUsage(ctx context.Context, tx pgx.Tx, removed []metastore.BlobInfo) error {
	type sum struct{ bytes, count int64 }
	per := make(map[coffer.AccountID]*sum)
	for _, b := range removed {
		if per[b.Owner] == nil {
			per[b.Owner] = &sum{}
		}
		per[b.Owner].bytes += b.Size
		per[b.Owner].count++
	}
	if len(per) == 0 {
		return nil
	}
	var (
		accts        [][]byte
		sizes, count []int64
	)
	for a, s := range per {
		accts, sizes, count = append(accts, a[:]), append(sizes, s.bytes), append(count, s.count)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM usage WHERE account = ANY($1) ORDER BY account FOR UPDATE`, accts); err != nil {
		return wrap("collectable blobs: lock usage", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE usage u SET bytes = u.bytes - d.bytes, count = u.count - d.n
		FROM unnest($1::bytea[], $2::bigint[], $3::bigint[]) AS d(account, bytes, n) WHERE u.account = d.account`,
		accts, sizes, count); err != nil {
		return wrap("collectable blobs: usage", err)
	}
	return nil
}

// AllBlobs implements metastore.Blobs, in ID order, streamed.
func (s *Store) AllBlobs(ctx context.Context) iter.Seq2[metastore.BlobInfo, error] {
	return rowsSeq(ctx, s.pool, "all blobs", func(r pgx.Rows) (metastore.BlobInfo, error) { return scanBlob(r) },
		`SELECT `+blobCols+` FROM blobs ORDER BY id`)
}

// ReferencedBlobs implements metastore.Blobs, in ID order, streamed: computed from the reference
// rows themselves, not from the reference counts, so fsck checks one against the other.
func (s *Store) ReferencedBlobs(ctx context.Context) iter.Seq2[coffer.BlobID, error] {
	return rowsSeq(ctx, s.pool, "referenced blobs", func(r pgx.Rows) (coffer.BlobID, error) {
		var (
			id  coffer.BlobID
			raw pgtype.DriverBytes
		)
		if err := r.Scan(&raw); err != nil {
			return id, err
		}
		return id, setID(id[:], raw, "blob id")
	}, `SELECT DISTINCT blob FROM node_blobs ORDER BY blob`)
}
