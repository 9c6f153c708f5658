package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"coffer"
	"coffer/internal/metastore"
)

var _ metastore.Links = (*Store)(nil)

const linkColumns = `id, owner, tree, node, record, verifier, created, expires, max_downloads, downloads, revoked, max_uploads, uploads`

func scanLink(row pgx.Row) (metastore.Link, error) {
	var (
		l                     metastore.Link
		id, owner, tree, node []byte
		created, expires      pgtype.Timestamptz
	)
	if err := row.Scan(&id, &owner, &tree, &node, &l.Record, &l.Verifier, &created, &expires,
		&l.MaxDownloads, &l.Downloads, &l.Revoked, &l.MaxUploads, &l.Uploads); err != nil {
		return l, err
	}
	for _, f := range []struct {
		dst, b []byte
		what   string
	}{{l.ID[:], id, "link id"}, {l.Owner[:], owner, "link owner"}, {l.Tree[:], tree, "link tree"}, {l.Node[:], node, "link node"}} {
		if err := setID(f.dst, f.b, f.what); err != nil {
			return l, err
		}
	}
	l.Created, l.Expires = fromTS(created), fromTS(expires)
	return l, nil
}

// CreateLink implements metastore.Links.
func (s *Store) CreateLink(ctx context.Context, l metastore.Link) error {
	switch {
	case l.MaxDownloads < 0 || l.Downloads < 0 || l.MaxUploads < 0 || l.Uploads < 0:
		return fmt.Errorf("postgres: create link: negative download or upload count: %w", coffer.ErrInvalid)
	case l.Created.IsZero():
		return fmt.Errorf("postgres: create link: zero creation time: %w", coffer.ErrInvalid)
	}
	const what = "create link"
	return s.write(ctx, what, func(tx pgx.Tx) error {
		if ok, err := exists(ctx, tx, what, `SELECT 1 FROM accounts WHERE id = $1`, l.Owner[:]); err != nil || !ok {
			return cmp(err, fmt.Errorf("postgres: create link: owner %s: %w", l.Owner, coffer.ErrNotFound))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO links (`+linkColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			l.ID[:], l.Owner[:], l.Tree[:], l.Node[:], blob(l.Record), blob(l.Verifier), l.Created,
			ts(l.Expires), l.MaxDownloads, l.Downloads, l.Revoked, l.MaxUploads, l.Uploads); err != nil {
			return wrap(what, err) // a taken ID is a unique violation: ErrExist
		}
		return nil
	})
}

// Link implements metastore.Links.
func (s *Store) Link(ctx context.Context, id [16]byte) (metastore.Link, error) {
	l, err := scanLink(s.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE id = $1`, id[:]))
	if err != nil {
		return l, notFound(err, "link")
	}
	return l, nil
}

// ListLinks implements metastore.Links.
func (s *Store) ListLinks(ctx context.Context, owner coffer.AccountID) ([]metastore.Link, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+linkColumns+` FROM links WHERE owner = $1 ORDER BY created DESC, id`, owner[:])
	if err != nil {
		return nil, wrap("list links", err)
	}
	defer rows.Close()
	var out []metastore.Link
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, wrap("list links", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list links", err)
	}
	return out, nil
}

// RevokeLink implements metastore.Links.
func (s *Store) RevokeLink(ctx context.Context, owner coffer.AccountID, id [16]byte) error {
	ct, err := s.pool.Exec(ctx, `UPDATE links SET revoked = true WHERE id = $1 AND owner = $2`, id[:], owner[:])
	if err != nil {
		return wrap("revoke link", err)
	}
	if ct.RowsAffected() != 1 {
		return fmt.Errorf("postgres: revoke link: %w", coffer.ErrNotFound)
	}
	return nil
}

// UseLink implements metastore.Links. The row lock (FOR UPDATE) serialises concurrent opens.
func (s *Store) UseLink(ctx context.Context, id [16]byte, now time.Time) (metastore.Link, error) {
	const what = "use link"
	var l metastore.Link
	err := s.write(ctx, what, func(tx pgx.Tx) error {
		var err error
		l, err = scanLink(tx.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE id = $1 FOR UPDATE`, id[:]))
		if err != nil {
			return notFound(err, what)
		}
		if !l.Usable(now) {
			return fmt.Errorf("postgres: use link: revoked, expired or used up: %w", coffer.ErrForbidden)
		}
		if _, err := tx.Exec(ctx, `UPDATE links SET downloads = downloads + 1 WHERE id = $1`, id[:]); err != nil {
			return wrap(what, err)
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
	rows, err := s.pool.Query(ctx, `SELECT nb.node FROM node_blobs nb
		JOIN nodes n ON n.tree = nb.tree AND n.node = nb.node AND n.version = nb.version
		WHERE nb.blob = $1 AND nb.tree = $2 ORDER BY nb.node`, b[:], tree[:])
	if err != nil {
		return nil, wrap("link blob nodes", err)
	}
	defer rows.Close()
	out := []coffer.NodeID{}
	for rows.Next() {
		var raw []byte
		var id coffer.NodeID
		if err := rows.Scan(&raw); err != nil {
			return nil, wrap("link blob nodes", err)
		}
		if err := setID(id[:], raw, "node id"); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("link blob nodes", err)
	}
	return out, nil
}
