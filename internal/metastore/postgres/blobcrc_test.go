package postgres

import (
	"context"
	"testing"

	"coffer/internal/metastore"
	"coffer/internal/metastore/metastoretest"
)

// TestBlobCRCMigration: migration 0006 on a database written before it (metastoretest.BlobCRCUpgrade).
func TestBlobCRCMigration(t *testing.T) {
	dsn := freshDB(t, true)
	s := open(t, dsn)
	metastoretest.BlobCRCUpgrade(t, s, func(ctx context.Context) error {
		if _, err := s.pool.Exec(ctx, `ALTER TABLE blobs DROP COLUMN crc32c`); err != nil {
			return err
		}
		_, err := s.pool.Exec(ctx, `DELETE FROM coffer_schema_version WHERE version = 6`)
		s.Close()
		return err
	}, func() metastore.Store {
		s = open(t, dsn)
		if v, err := s.schemaVersion(t.Context()); err != nil || v != 6 {
			t.Fatalf("schema version after reopening: %d %v, want 6", v, err)
		}
		return s
	})
}
