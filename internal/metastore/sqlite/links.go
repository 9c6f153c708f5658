package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

var _ metastore.Links = (*Store)(nil)

const linkColumns = `id, owner, tree, node, record, verifier, created, expires, max_downloads, downloads, revoked, max_uploads, uploads`

// scanLink reads one row of linkColumns.
func scanLink(row interface{ Scan(...any) error }) (metastore.Link, error) {
	var (
		l                        metastore.Link
		id, owner, tree, node    []byte
		created, expires         sql.NullInt64
		revoked                  int64
		record, verifier         []byte
		maxDownloads, downloadsN int64
	)
	if err := row.Scan(&id, &owner, &tree, &node, &record, &verifier, &created, &expires, &maxDownloads, &downloadsN, &revoked,
		&l.MaxUploads, &l.Uploads); err != nil {
		return l, err
	}
	for _, f := range []struct {
		dst  []byte
		b    []byte
		what string
	}{{l.ID[:], id, "link id"}, {l.Owner[:], owner, "link owner"}, {l.Tree[:], tree, "link tree"}, {l.Node[:], node, "link node"}} {
		if err := setID(f.dst, f.b, f.what); err != nil {
			return l, err
		}
	}
	l.Record, l.Verifier = record, verifier
	l.Created, l.Expires = fromNanos(created), fromNanos(expires)
	l.MaxDownloads, l.Downloads, l.Revoked = maxDownloads, downloadsN, revoked != 0
	return l, nil
}

// CreateLink implements metastore.Links.
func (s *Store) CreateLink(ctx context.Context, l metastore.Link) error {
	switch {
	case l.MaxDownloads < 0 || l.Downloads < 0 || l.MaxUploads < 0 || l.Uploads < 0:
		return fmt.Errorf("sqlite: create link: negative download or upload count: %w", coffer.ErrInvalid)
	case l.Created.IsZero():
		return fmt.Errorf("sqlite: create link: zero creation time: %w", coffer.ErrInvalid)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM accounts WHERE id = ?`, l.Owner[:]); err != nil || !ok {
			return cmp(err, fmt.Errorf("sqlite: create link: owner %s: %w", l.Owner, coffer.ErrNotFound))
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM links WHERE id = ?`, l.ID[:]); err != nil || ok {
			return cmp(err, fmt.Errorf("sqlite: create link: id taken: %w", coffer.ErrExist))
		}
		revoked := 0
		if l.Revoked {
			revoked = 1
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO links (`+linkColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			l.ID[:], l.Owner[:], l.Tree[:], l.Node[:], blob(l.Record), blob(l.Verifier), l.Created.UnixNano(),
			nanos(l.Expires), l.MaxDownloads, l.Downloads, revoked, l.MaxUploads, l.Uploads); err != nil {
			return fmt.Errorf("sqlite: create link: %w", err)
		}
		return nil
	})
}

// Link implements metastore.Links.
func (s *Store) Link(ctx context.Context, id [16]byte) (metastore.Link, error) {
	l, err := scanLink(s.r.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM links WHERE id = ?`, id[:]))
	if err != nil {
		return l, notFound(err, "link")
	}
	return l, nil
}

// ListLinks implements metastore.Links.
func (s *Store) ListLinks(ctx context.Context, owner coffer.AccountID) ([]metastore.Link, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+linkColumns+` FROM links WHERE owner = ? ORDER BY created DESC, id`, owner[:])
	if err != nil {
		return nil, fmt.Errorf("sqlite: list links: %w", err)
	}
	defer rows.Close()
	var out []metastore.Link
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list links: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list links: %w", err)
	}
	return out, nil
}

// RevokeLink implements metastore.Links.
func (s *Store) RevokeLink(ctx context.Context, owner coffer.AccountID, id [16]byte) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE links SET revoked = 1 WHERE id = ? AND owner = ?`, id[:], owner[:])
		if err != nil {
			return fmt.Errorf("sqlite: revoke link: %w", err)
		}
		if n, err := affected(res); err != nil || n != 1 {
			return cmp(err, fmt.Errorf("sqlite: revoke link: %w", coffer.ErrNotFound))
		}
		return nil
	})
}

// UseLink implements metastore.Links.
func (s *Store) UseLink(ctx context.Context, id [16]byte, now time.Time) (metastore.Link, error) {
	var l metastore.Link
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		l, err = scanLink(tx.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM links WHERE id = ?`, id[:]))
		if err != nil {
			return notFound(err, "use link")
		}
		if !l.Usable(now) {
			return fmt.Errorf("sqlite: use link: revoked, expired or used up: %w", coffer.ErrForbidden)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE links SET downloads = downloads + 1 WHERE id = ?`, id[:]); err != nil {
			return fmt.Errorf("sqlite: use link: %w", err)
		}
		l.Downloads++
		return nil
	})
	if err != nil {
		return metastore.Link{}, err
	}
	return l, nil
}

// LinkBlobNodes implements metastore.Links.
func (s *Store) LinkBlobNodes(ctx context.Context, tree coffer.TreeID, b coffer.BlobID) ([]coffer.NodeID, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT nb.node FROM node_blobs nb
		JOIN nodes n ON n.tree = nb.tree AND n.node = nb.node AND n.version = nb.version
		WHERE nb.blob = ? AND nb.tree = ? ORDER BY nb.node`, b[:], tree[:])
	if err != nil {
		return nil, fmt.Errorf("sqlite: link blob nodes: %w", err)
	}
	defer rows.Close()
	out := []coffer.NodeID{}
	for rows.Next() {
		var raw []byte
		var id coffer.NodeID
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("sqlite: link blob nodes: %w", err)
		}
		if err := setID(id[:], raw, "node id"); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: link blob nodes: %w", err)
	}
	return out, nil
}
