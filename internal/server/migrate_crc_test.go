package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/internal/blobstore"
	"coffer/internal/blobstore/disk"
	"coffer/internal/metastore"
)

// legacyBlob is the blob addLegacyBlob records without a CRC-32C (as before the column existed).
var legacyBlob = []byte("a blob recorded before the server kept CRC-32Cs")

// addLegacyBlob stores legacyBlob under its SHA-256 in cfg's stores, recorded without a CRC-32C
// and owned by the owner of some recorded blob, so that migrations carry a "no CRC" row too.
func addLegacyBlob(t *testing.T, cfg StoreConfig) {
	t.Helper()
	ctx := context.Background()
	st, err := OpenStores(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var owner coffer.AccountID
	for b, err := range st.Meta.AllBlobs(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		owner = b.Owner
		break
	}
	id := coffer.BlobID(sha256.Sum256(legacyBlob))
	if _, err := st.Blobs.Put(ctx, id, bytes.NewReader(legacyBlob), int64(len(legacyBlob)), crc32.Checksum(legacyBlob, blobstore.CRC32C)); err != nil {
		t.Fatal(err)
	}
	if err := st.Meta.AddBlob(ctx, metastore.BlobInfo{ID: id, Owner: owner, Size: int64(len(legacyBlob)), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// blobRecords returns every blob record of cfg's metadata store.
func blobRecords(t *testing.T, cfg StoreConfig) map[coffer.BlobID]metastore.BlobInfo {
	t.Helper()
	ctx := context.Background()
	st, err := OpenStores(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[coffer.BlobID]metastore.BlobInfo{}
	for b, err := range st.Meta.AllBlobs(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		out[b.ID] = b
	}
	return out
}

// checkBlobCRCsCopied checks that the destination's blob records carry the source's CRC-32Cs: the
// uploaded blobs with theirs, the legacy blob without one.
func checkBlobCRCsCopied(t *testing.T, from, to StoreConfig) {
	t.Helper()
	src, dst := blobRecords(t, from), blobRecords(t, to)
	if len(src) != len(dst) || len(src) < 2 {
		t.Fatalf("%d blob records in the source, %d in the destination", len(src), len(dst))
	}
	withCRC := 0
	for id, s := range src {
		d := dst[id]
		if d.HasCRC != s.HasCRC || d.CRC32C != s.CRC32C || d.Size != s.Size || d.Owner != s.Owner {
			t.Fatalf("blob %s: source record %+v, destination %+v", id, s, d)
		}
		if s.HasCRC {
			withCRC++
		}
	}
	if legacy := dst[sha256.Sum256(legacyBlob)]; legacy.Size == 0 || legacy.HasCRC || withCRC != len(src)-1 {
		t.Fatalf("%d of %d blobs with a CRC-32C, legacy blob %+v; want all but the legacy blob", withCRC, len(src), legacy)
	}
}

// TestMigrateCopyBlobChecks: before copying a blob, migrate checks the source's bytes against the
// recorded CRC-32C, or, for a blob recorded without one, their SHA-256 against the ID; a
// mismatch is an error wrapping ErrCorrupt that names the blob, and nothing is copied.
func TestMigrateCopyBlobChecks(t *testing.T) {
	ctx := t.Context()
	from, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	to, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(id coffer.BlobID, data []byte) metastore.BlobInfo {
		t.Helper()
		if _, err := from.Put(ctx, id, bytes.NewReader(data), int64(len(data)), crc32.Checksum(data, blobstore.CRC32C)); err != nil {
			t.Fatal(err)
		}
		return metastore.BlobInfo{ID: id, Size: int64(len(data))}
	}
	tagged := []byte("a pack named by its chunk tags")
	withCRC := put(sha256.Sum256([]byte("tags")), tagged)
	withCRC.CRC32C, withCRC.HasCRC = crc32.Checksum(tagged, blobstore.CRC32C), true
	legacy := put(sha256.Sum256(legacyBlob), legacyBlob)
	for _, b := range []metastore.BlobInfo{withCRC, legacy} {
		if copied, err := copyBlob(ctx, from, to, b); err != nil || !copied {
			t.Fatalf("copy of intact blob %+v: %v %v", b, copied, err)
		}
		if n, err := to.Stat(ctx, b.ID); err != nil || n != b.Size {
			t.Fatalf("copied blob %s: %d %v", b.ID, n, err)
		}
	}

	wrongCRC := put(sha256.Sum256([]byte("other tags")), tagged)
	wrongCRC.CRC32C, wrongCRC.HasCRC = withCRC.CRC32C^1, true
	misnamed := put(sha256.Sum256([]byte("not these bytes")), legacyBlob)
	short := put(sha256.Sum256([]byte("short")), tagged[:10])
	short.Size, short.CRC32C, short.HasCRC = int64(len(tagged)), withCRC.CRC32C, true
	for _, c := range []struct {
		b    metastore.BlobInfo
		want string
	}{
		{wrongCRC, "do not match the recorded size and CRC-32C"},
		{misnamed, "do not hash to the ID"},
		{short, "do not match the recorded size and CRC-32C"},
	} {
		_, err := copyBlob(ctx, from, to, c.b)
		if !errors.Is(err, coffer.ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.b.ID.String()) {
			t.Errorf("copy of %+v: %v, want ErrCorrupt naming the blob and %q", c.b, err, c.want)
		}
		if _, err := to.Stat(ctx, c.b.ID); !errors.Is(err, coffer.ErrNotFound) {
			t.Errorf("corrupt blob %s was copied (%v)", c.b.ID, err)
		}
	}
}
