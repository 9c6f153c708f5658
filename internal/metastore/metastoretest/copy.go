package metastoretest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// TableCopier is a store with links and what `coffer admin migrate` needs of it besides (the
// server's TableCopier): rows of a table out, batches of rows in.
type TableCopier interface {
	metastore.Store
	metastore.Links
	ExportTable(ctx context.Context, table string, fn func(row []any) error) error
	ImportRows(ctx context.Context, table string, rows [][]any) (int64, error)
}

// CopyTables checks a store's table copy on a fresh store s: rows round-trip with their NULLs
// and types, a re-import inserts nothing, values of the wrong type or range are refused with
// nothing of the batch inserted, and export errors are reported.
func CopyTables(t *testing.T, s TableCopier) {
	t.Helper()
	ctx := t.Context()
	id := bytes.Repeat([]byte{1}, 16)
	tree := bytes.Repeat([]byte{2}, 16)
	created := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	row := []any{id, "alice", created, []byte("kdf"), nil, []byte("mk"), nil, nil, []byte("bundle"), int64(3), nil, tree, int64(0)}
	n, err := s.ImportRows(ctx, "accounts", [][]any{row})
	if err != nil || n != 1 {
		t.Fatalf("import: %d %v", n, err)
	}
	if n, err := s.ImportRows(ctx, "accounts", [][]any{row}); err != nil || n != 0 {
		t.Fatalf("import again: %d %v (want 0 inserted)", n, err)
	}
	var got [][]any
	if err := s.ExportTable(ctx, "accounts", func(r []any) error {
		got = append(got, append([]any(nil), r...))
		return nil
	}); err != nil || len(got) != 1 {
		t.Fatalf("export: %v %d rows", err, len(got))
	}
	r := got[0]
	if !bytes.Equal(r[0].([]byte), id) || r[1] != "alice" || !r[2].(time.Time).Equal(created) || r[4] != nil && len(r[4].([]byte)) != 0 ||
		r[9] != int64(3) || !bytes.Equal(r[11].([]byte), tree) {
		t.Fatalf("exported %v", r)
	}
	a, err := s.Account(ctx, coffer.AccountID(id))
	if err != nil || a.Username != "alice" || a.BundleGeneration != 3 || string(a.Bundle) != "bundle" {
		t.Fatalf("imported account reads back as %+v, %v", a, err)
	}

	// Links: a boolean column travels as 0 or 1.
	lid := bytes.Repeat([]byte{5}, 16)
	link := []any{lid, id, tree, bytes.Repeat([]byte{3}, 16), []byte("rec"), []byte("ver"), created, time.Time{}, int64(5), int64(2), int64(1), int64(3), int64(1)}
	if n, err := s.ImportRows(ctx, "links", [][]any{link}); err != nil || n != 1 {
		t.Fatalf("import link: %d %v", n, err)
	}
	l, err := s.Link(ctx, [16]byte(lid))
	if err != nil || !l.Revoked || l.Downloads != 2 || l.MaxDownloads != 5 || !l.Expires.IsZero() || string(l.Record) != "rec" ||
		l.MaxUploads != 3 || l.Uploads != 1 {
		t.Fatalf("imported link reads back as %+v, %v", l, err)
	}
	var lr []any
	s.ExportTable(ctx, "links", func(r []any) error { lr = append([]any(nil), r...); return nil })
	if len(lr) != 13 || lr[10] != int64(1) || !lr[7].(time.Time).IsZero() {
		t.Fatalf("exported link %v", lr)
	}
	if _, err := s.ImportRows(ctx, "links", [][]any{append(append(append([]any(nil), link[:10]...), int64(2)), link[11:]...)}); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("boolean 2 accepted: %v", err)
	}

	// Blobs: the CRC-32C travels as an integer, or nil for a blob recorded without one.
	withCRC, noCRC := bytes.Repeat([]byte{6}, 32), bytes.Repeat([]byte{7}, 32)
	blobRows := [][]any{{withCRC, id, int64(10), created, int64(0xffffffff)}, {noCRC, id, int64(20), created, nil}}
	if n, err := s.ImportRows(ctx, "blobs", blobRows); err != nil || n != 2 {
		t.Fatalf("import blobs: %d %v", n, err)
	}
	if b, err := s.Blob(ctx, coffer.BlobID(withCRC)); err != nil || !b.HasCRC || b.CRC32C != 0xffffffff || b.Size != 10 {
		t.Fatalf("imported blob with a CRC-32C reads back as %+v, %v", b, err)
	}
	if b, err := s.Blob(ctx, coffer.BlobID(noCRC)); err != nil || b.HasCRC || b.CRC32C != 0 || b.Size != 20 {
		t.Fatalf("imported blob without a CRC-32C reads back as %+v, %v", b, err)
	}
	exported := map[byte]any{}
	s.ExportTable(ctx, "blobs", func(r []any) error { exported[r[0].([]byte)[0]] = r[4]; return nil })
	if len(exported) != 2 || exported[6] != int64(0xffffffff) || exported[7] != nil {
		t.Fatalf("exported blob CRCs %v", exported)
	}

	// Bad input: nothing of the batch is inserted.
	other := append([]any(nil), row...)
	other[0], other[1] = bytes.Repeat([]byte{9}, 16), "bob"
	for name, c := range map[string]struct {
		table string
		rows  [][]any
	}{
		"unknown table":   {"sessions", [][]any{row}},
		"short row":       {"accounts", [][]any{other, row[:3]}},
		"wrong type":      {"accounts", [][]any{other, {id, 7, created, nil, nil, nil, nil, nil, nil, int64(0), nil, tree, int64(0)}}},
		"time not a time": {"invites", [][]any{{"code", "yesterday", nil, nil}}},
		"crc not an int":  {"blobs", [][]any{{bytes.Repeat([]byte{8}, 32), id, int64(1), created, "crc"}}},
	} {
		if _, err := s.ImportRows(ctx, c.table, c.rows); !errors.Is(err, coffer.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := s.AccountByName(ctx, "bob"); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("a failed batch left rows behind: %v", err)
	}
	if err := s.ExportTable(ctx, "nope", func([]any) error { return nil }); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("export of an unknown table: %v", err)
	}
	stop := errors.New("stop")
	if err := s.ExportTable(ctx, "accounts", func([]any) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("export does not return fn's error: %v", err)
	}
}
