package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"coffer"
)

// Table copying for `coffer admin migrate` (the server's TableCopier capability). The table and
// column lists, and the value types, are the same in package postgres: that is the contract
// between them. A new table goes into both lists and into server.MigrateTables
// (TestCopyTablesCoverSchema catches a forgotten one). Sessions and login-failure counters are
// not copied (they are transient). blobs.refs is not copied either: ImportRows raises it for every
// node_blobs row it inserts (a commit does the same, see commitTx).
//
// Column types: B bytes NOT NULL ([]byte), b bytes or NULL ([]byte, nil), s text (string),
// i integer (int64), n integer or NULL (int64, nil), o boolean (int64 0 or 1), t time or NULL
// (time.Time, zero).
var copyTables = map[string]struct{ cols, types string }{
	"accounts":    {"id,username,created,kdf,login_key,master_key,recovery_login_key,recovery_master_key,bundle,bundle_gen,public_keys,tree,quota", "BstbbbbbbibBi"},
	"usage":       {"account,bytes,count", "Bii"},
	"invites":     {"code,created,used_by,used_at", "stbt"},
	"trees":       {"id,owner,version,head,buckets", "BBiBb"},
	"nodes":       {"tree,node,parent,kind,version,hash,record", "BBBiiBB"},
	"history":     {"tree,node,version,kind,hash,record", "BBiiBB"},
	"blobs":       {"id,owner,size,created,crc32c", "BBitn"},
	"node_blobs":  {"tree,node,version,blob", "BBiB"},
	"folders":     {"tree,folder,bucket,count,root", "BBiiB"},
	"changes":     {"account,seq,tree,version,head,ops", "BiBiBB"},
	"account_seq": {"account,seq", "Bi"},
	"links":       {"id,owner,tree,node,record,verifier,created,expires,max_downloads,downloads,revoked,max_uploads,uploads", "BBBBBBttiioii"},
	"drops":       {"id,link,owner,record,created", "BBBBt"},
	"drop_blobs":  {"drop_id,blob", "BB"},
	"rosters":     {"tree,owner,generation,epoch,roster", "BBiiB"},
	"members":     {"tree,account,role,status,epoch,invite,updated", "BBisiBt"},
}

func copySpec(table string) ([]string, string, error) {
	spec, ok := copyTables[table]
	if !ok {
		return nil, "", fmt.Errorf("sqlite: copy: unknown table %q: %w", table, coffer.ErrInvalid)
	}
	types := spec.types
	cols := strings.Split(spec.cols, ",")
	if len(cols) != len(types) {
		panic("sqlite: copy: bad spec for " + table)
	}
	return cols, types, nil
}

// ExportTable calls fn with every row of table, values in the documented column order and types.
// fn must not keep the row slice.
func (s *Store) ExportTable(ctx context.Context, table string, fn func(row []any) error) error {
	cols, types, err := copySpec(table)
	if err != nil {
		return err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+table)
	if err != nil {
		return fmt.Errorf("sqlite: export %s: %w", table, err)
	}
	defer rows.Close()
	dst := make([]any, len(cols))
	for i, t := range types {
		switch t {
		case 'B', 'b':
			dst[i] = new([]byte)
		case 's':
			dst[i] = new(string)
		case 'i', 'o':
			dst[i] = new(int64)
		case 'n':
			dst[i] = new(sql.NullInt64)
		case 't':
			dst[i] = new(sql.NullInt64)
		}
	}
	row := make([]any, len(cols))
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return fmt.Errorf("sqlite: export %s: %w", table, err)
		}
		for i, t := range types {
			switch t {
			case 'B', 'b':
				row[i] = *dst[i].(*[]byte)
			case 's':
				row[i] = *dst[i].(*string)
			case 'i':
				row[i] = *dst[i].(*int64)
			case 'n':
				row[i] = nil
				if n := *dst[i].(*sql.NullInt64); n.Valid {
					row[i] = n.Int64
				}
			case 'o':
				row[i] = min(*dst[i].(*int64), 1)
			case 't':
				row[i] = fromNanos(*dst[i].(*sql.NullInt64))
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: export %s: %w", table, err)
	}
	return nil
}

// ImportRows inserts rows into table in one transaction, skipping every row that collides with
// an existing one on a unique key (so an interrupted import can simply run again), and returns
// how many it inserted. Rows are in ExportTable's format.
func (s *Store) ImportRows(ctx context.Context, table string, rows [][]any) (int64, error) {
	cols, types, err := copySpec(table)
	if err != nil {
		return 0, err
	}
	q := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (` +
		strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + `) ON CONFLICT DO NOTHING`
	var n int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: import %s: %w", table, err)
		}
		defer stmt.Close()
		args := make([]any, len(cols))
		for _, row := range rows {
			if len(row) != len(cols) {
				return fmt.Errorf("sqlite: import %s: row has %d values, want %d: %w", table, len(row), len(cols), coffer.ErrInvalid)
			}
			for i, t := range types {
				v, err := importValue(t, row[i])
				if err != nil {
					return fmt.Errorf("sqlite: import %s.%s: %w", table, cols[i], err)
				}
				args[i] = v
			}
			res, err := stmt.ExecContext(ctx, args...)
			if err != nil {
				return fmt.Errorf("sqlite: import %s: %w", table, err)
			}
			k, err := affected(res)
			if err != nil {
				return err
			}
			n += k
			if table == "node_blobs" && k > 0 {
				if _, err := tx.ExecContext(ctx, `UPDATE blobs SET refs = refs + ? WHERE id = ?`, k, args[3]); err != nil {
					return fmt.Errorf("sqlite: import node_blobs: blob references: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func importValue(t rune, v any) (any, error) {
	bad := func() (any, error) {
		return nil, fmt.Errorf("value of type %T for a %q column: %w", v, t, coffer.ErrInvalid)
	}
	switch t {
	case 'B', 'b':
		b, ok := v.([]byte)
		if !ok && v != nil {
			return bad()
		}
		if t == 'B' {
			return blob(b), nil
		}
		if b == nil {
			return nil, nil
		}
		return b, nil
	case 's':
		if s, ok := v.(string); ok {
			return s, nil
		}
	case 'i':
		if i, ok := v.(int64); ok {
			return i, nil
		}
	case 'n':
		if v == nil {
			return nil, nil
		}
		if i, ok := v.(int64); ok {
			return i, nil
		}
	case 'o':
		if i, ok := v.(int64); ok && (i == 0 || i == 1) {
			return i, nil
		}
	case 't':
		if v == nil {
			return nil, nil
		}
		if tm, ok := v.(time.Time); ok {
			return nanos(tm), nil
		}
	}
	return bad()
}
