package sqlite

import (
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// TestBlobCRCMigration: a database from before migration 0007 keeps its blobs, which then have
// no CRC-32C (fsck checks those the old way); blobs added afterwards record theirs.
func TestBlobCRCMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "meta.db")
	s := open(t, path)
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "alice", Created: time.Unix(1700000000, 0),
		Credentials: metastore.Credentials{KDF: []byte("kdf"), LoginKey: []byte("lk")}, Tree: coffer.NewTreeID()}
	root := metastore.Node{Node: coffer.NewNodeID(), Kind: 1, Version: 1, Hash: sha256.Sum256([]byte("r")), Record: []byte("root")}
	if _, err := s.CreateAccount(ctx, a, "", metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h1"),
		Records: []metastore.CommitRecord{{Node: root}}}); err != nil {
		t.Fatal(err)
	}
	old := metastore.BlobInfo{ID: sha256.Sum256([]byte("old")), Owner: a.ID, Size: 42, Created: time.Unix(1700000001, 0).UTC()}
	if err := s.AddBlob(ctx, old); err != nil {
		t.Fatal(err)
	}
	// Back to schema version 6, as a database written before the change.
	if _, err := s.w.ExecContext(ctx, `ALTER TABLE blobs DROP COLUMN crc32c`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM schema_version WHERE version = 7`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, path)
	defer s.Close()
	if v, err := s.schemaVersion(ctx); err != nil || v != 7 {
		t.Fatalf("schema version after reopening: %d %v, want 7", v, err)
	}
	if b, err := s.Blob(ctx, old.ID); err != nil || b != old {
		t.Fatalf("old blob after the migration: %+v %v, want %+v (no CRC-32C)", b, err, old)
	}
	nb := metastore.BlobInfo{ID: sha256.Sum256([]byte("new")), Owner: a.ID, Size: 7, Created: time.Unix(1700000002, 0).UTC(),
		CRC32C: 0xdeadbeef, HasCRC: true}
	if err := s.AddBlob(ctx, nb); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Blob(ctx, nb.ID); err != nil || b != nb {
		t.Fatalf("new blob: %+v %v, want %+v", b, err, nb)
	}
}
