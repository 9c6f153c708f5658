package disk

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"coffer/internal/blobstore/blobstoretest"
)

// TestPutRecreatesRemovedDirectory: Put remembers the fan-out directories it made; if one is
// removed behind the store's back, the next Put into it makes it again instead of failing.
func TestPutRecreatesRemovedDirectory(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a blob whose directory goes away")
	id, err := blobstoretest.PutBytes(ctx, s, data)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := s.path(id)
	if _, ok := s.made.Load(dir); !ok {
		t.Fatal("Put did not remember the directory it made")
	}
	if err := os.RemoveAll(filepath.Dir(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := blobstoretest.PutBytes(ctx, s, data); err != nil {
		t.Fatalf("Put after the directory was removed: %v", err)
	}
	rc, err := s.Get(ctx, id, 0, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, data) {
		t.Fatalf("read back %q", got)
	}
}
