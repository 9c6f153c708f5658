package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"coffer"
)

// Table copying for `coffer admin migrate` (the server's TableCopier capability). The table and
// column lists, and the value types, are the same in package sqlite: that is the contract
// between them. A new table goes into both lists and into server.MigrateTables
// (TestCopyTablesCoverSchema catches a forgotten one). Sessions and login-failure counters are
// not copied (they are transient). blobs.refs is not copied either: the node_blobs triggers
// recompute it as rows arrive.
//
// Column types: B bytes NOT NULL ([]byte), b bytes or NULL ([]byte, nil), s text (string),
// i integer (int64), n integer or NULL (int64, nil), o boolean (int64 0 or 1), t time or NULL
// (time.Time, zero; microsecond resolution here).
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
		return nil, "", fmt.Errorf("postgres: copy: unknown table %q: %w", table, coffer.ErrInvalid)
	}
	cols := strings.Split(spec.cols, ",")
	if len(cols) != len(spec.types) {
		panic("postgres: copy: bad spec for " + table)
	}
	return cols, spec.types, nil
}

// ExportTable calls fn with every row of table, values in the documented column order and types.
// fn must not keep the row slice. It holds one pool connection while it runs.
func (s *Store) ExportTable(ctx context.Context, table string, fn func(row []any) error) error {
	cols, types, err := copySpec(table)
	if err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+table)
	if err != nil {
		return wrap("export "+table, err)
	}
	defer rows.Close()
	dst := make([]any, len(cols))
	for i, t := range types {
		switch t {
		case 'B', 'b':
			dst[i] = new([]byte)
		case 's':
			dst[i] = new(string)
		case 'i':
			dst[i] = new(int64)
		case 'n':
			dst[i] = new(pgtype.Int8)
		case 'o':
			dst[i] = new(bool)
		case 't':
			dst[i] = new(pgtype.Timestamptz)
		}
	}
	row := make([]any, len(cols))
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return wrap("export "+table, err)
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
				if n := *dst[i].(*pgtype.Int8); n.Valid {
					row[i] = n.Int64
				}
			case 'o':
				row[i] = int64(0)
				if *dst[i].(*bool) {
					row[i] = int64(1)
				}
			case 't':
				row[i] = fromTS(*dst[i].(*pgtype.Timestamptz))
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return wrap("export "+table, rows.Err())
}

// ImportRows inserts rows into table in one transaction (one round trip), skipping every row
// that collides with an existing one on a unique key (so an interrupted import can simply run
// again), and returns how many it inserted. Rows are in ExportTable's format.
func (s *Store) ImportRows(ctx context.Context, table string, rows [][]any) (int64, error) {
	cols, types, err := copySpec(table)
	if err != nil {
		return 0, err
	}
	ph := make([]string, len(cols))
	for i := range ph {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	q := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(ph, ", ") + `) ON CONFLICT DO NOTHING`
	b := &pgx.Batch{}
	for _, row := range rows {
		if len(row) != len(cols) {
			return 0, fmt.Errorf("postgres: import %s: row has %d values, want %d: %w", table, len(row), len(cols), coffer.ErrInvalid)
		}
		args := make([]any, len(cols))
		for i, t := range types {
			v, err := importValue(t, row[i])
			if err != nil {
				return 0, fmt.Errorf("postgres: import %s.%s: %w", table, cols[i], err)
			}
			args[i] = v
		}
		b.Queue(q, args...)
	}
	var n int64
	err = s.write(ctx, "import "+table, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, b)
		for range rows {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return wrap("import "+table, err)
			}
			n += tag.RowsAffected()
		}
		return wrap("import "+table, br.Close())
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
			return i == 1, nil
		}
	case 't':
		if v == nil {
			return nil, nil
		}
		if tm, ok := v.(time.Time); ok {
			return ts(tm), nil
		}
	}
	return bad()
}
