package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"coffer/internal/metastore"
	"coffer/internal/metastore/metastoretest"
)

// TestBlobCRCMigration: migration 0007 on a database written before it (metastoretest.BlobCRCUpgrade).
func TestBlobCRCMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := open(t, path)
	metastoretest.BlobCRCUpgrade(t, s, func(ctx context.Context) error {
		defer s.Close()
		if _, err := s.w.ExecContext(ctx, `ALTER TABLE blobs DROP COLUMN crc32c`); err != nil {
			return err
		}
		_, err := s.w.ExecContext(ctx, `DELETE FROM schema_version WHERE version = 7`)
		return err
	}, func() metastore.Store {
		s = open(t, path)
		t.Cleanup(func() { s.Close() })
		if v, err := s.schemaVersion(t.Context()); err != nil || v != 7 {
			t.Fatalf("schema version after reopening: %d %v, want 7", v, err)
		}
		return s
	})
}
