package server

import (
	"bytes"
	"crypto/sha256"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/internal/blobstore"
	"coffer/internal/metastore"
)

// fsckEnv runs FsckStores on e's stores and returns the problem count and the report.
func fsckEnv(t *testing.T, e *env) (int, string) {
	t.Helper()
	var out bytes.Buffer
	n, err := FsckStores(t.Context(), e.meta, e.blobs, &out)
	if err != nil {
		t.Fatalf("fsck: %v\n%s", err, out.String())
	}
	return n, out.String()
}

// flipStoredByte flips one bit in the middle of the file the disk store keeps blob id in, as
// disk corruption would, keeping its size.
func flipStoredByte(t *testing.T, e *env, id coffer.BlobID) {
	t.Helper()
	h := id.String()
	p := filepath.Join(e.dir, "blobs", h[0:2], h[2:4], h)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBlobPutRecordsCRC: both upload routes record the CRC-32C the server verified, whatever the
// ID the client chose, also when the upload finds its bytes stored already.
func TestBlobPutRecordsCRC(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	ctx := t.Context()
	check := func(what string, id coffer.BlobID, data []byte) {
		t.Helper()
		b, err := e.meta.Blob(ctx, id)
		if want := crc32.Checksum(data, blobstore.CRC32C); err != nil || !b.HasCRC || b.CRC32C != want {
			t.Fatalf("%s: record %+v %v, want CRC-32C %08x", what, b, err, want)
		}
	}
	data := []byte("an honest pack")
	if _, st, ae := u.upload(data); st != 200 {
		t.Fatalf("upload: %d %+v", st, ae)
	}
	check("upload", sha256.Sum256(data), data)

	// An ID that is not the bytes' SHA-256 (as when clients name blobs by their chunk tags).
	tagged := []byte("a pack named by its chunk tags")
	id := coffer.BlobID(sha256.Sum256([]byte("the chunk tags")))
	if st, ae := e.putBlobAs(treePath(u, ""), u.token, id, crcOf(tagged), tagged, nil); st != 200 {
		t.Fatalf("upload under a tag-derived ID: %d %+v", st, ae)
	}
	check("upload under a tag-derived ID", id, tagged)

	// Bytes left by an upload that died before its bookkeeping: read back, then recorded.
	left := []byte("a pack whose upload died after the store")
	leftID := coffer.BlobID(sha256.Sum256(left))
	if _, err := e.blobs.Put(ctx, leftID, bytes.NewReader(left), int64(len(left)), crc32.Checksum(left, blobstore.CRC32C)); err != nil {
		t.Fatal(err)
	}
	if _, st, ae := u.upload(left); st != 200 {
		t.Fatalf("upload over leftovers: %d %+v", st, ae)
	}
	check("upload over leftovers", leftID, left)

	// Through an upload-only link.
	inbox := u.folder(u.root, "inbox")
	u.commit(inbox)
	req, fl, keys := u.uploadLinkOf(inbox.Node)
	req.MaxUploads = 1
	if st, ae := e.call("POST", "/v1/links", u.token, req, nil); st != 200 {
		t.Fatalf("create link: %d %+v", st, ae)
	}
	st, ae, resp := e.open(fl, keys)
	if st != 200 {
		t.Fatalf("open link: %d %+v", st, ae)
	}
	visitor := []byte("a visitor's pack")
	if st, ae := e.putBlob(linkPath(fl, ""), resp.Token, visitor, nil); st != 200 {
		t.Fatalf("link upload: %d %+v", st, ae)
	}
	check("link upload", sha256.Sum256(visitor), visitor)

	if n, out := fsckEnv(t, e); n != 0 {
		t.Fatalf("fsck of intact blobs: %d problems\n%s", n, out)
	}
}

// TestFsckChecksRecordedCRC: fsck checks a blob recorded with a CRC-32C against it, not against
// its ID (clients may derive IDs from something else than the bytes' SHA-256): an intact blob
// under any ID passes, and bytes flipped on disk after the upload are reported.
func TestFsckChecksRecordedCRC(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	honest := bytes.Repeat([]byte("honest pack "), 50)
	if _, st, ae := u.upload(honest); st != 200 {
		t.Fatalf("upload: %d %+v", st, ae)
	}
	tagged := bytes.Repeat([]byte("pack named by its tags "), 50)
	id := coffer.BlobID(sha256.Sum256([]byte("tags")))
	if st, ae := e.putBlobAs(treePath(u, ""), u.token, id, crcOf(tagged), tagged, nil); st != 200 {
		t.Fatalf("upload under a tag-derived ID: %d %+v", st, ae)
	}
	if n, out := fsckEnv(t, e); n != 0 || !strings.Contains(out, "checked 2 recorded blobs (0 without a recorded CRC-32C)") {
		t.Fatalf("fsck before the damage: %d problems\n%s", n, out)
	}

	flipStoredByte(t, e, id)
	n, out := fsckEnv(t, e)
	if n != 1 || !strings.Contains(out, "problem: blob "+id.String()+": content does not match its recorded CRC-32C (corrupt)") {
		t.Fatalf("fsck after a flipped bit: %d problems\n%s", n, out)
	}
	flipStoredByte(t, e, sha256.Sum256(honest))
	if n, out := fsckEnv(t, e); n != 2 || strings.Count(out, "recorded CRC-32C (corrupt)") != 2 {
		t.Fatalf("fsck after a second flipped bit: %d problems\n%s", n, out)
	}
}

// TestFsckLegacyBlob: a blob recorded before the server kept CRCs (no CRC-32C) is checked the old
// way, its SHA-256 against its ID: intact ones pass, damaged or misnamed ones are reported.
func TestFsckLegacyBlob(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	ctx := t.Context()
	legacy := func(id coffer.BlobID, data []byte) {
		t.Helper()
		if _, err := e.blobs.Put(ctx, id, bytes.NewReader(data), int64(len(data)), crc32.Checksum(data, blobstore.CRC32C)); err != nil {
			t.Fatal(err)
		}
		if err := e.meta.AddBlob(ctx, metastore.BlobInfo{ID: id, Owner: u.acct, Size: int64(len(data)), Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if b, err := e.meta.Blob(ctx, id); err != nil || b.HasCRC {
			t.Fatalf("legacy record %+v %v, want no CRC-32C", b, err)
		}
	}
	old := []byte("a blob from before the CRC column")
	oldID := coffer.BlobID(sha256.Sum256(old))
	legacy(oldID, old)
	if n, out := fsckEnv(t, e); n != 0 || !strings.Contains(out, "checked 1 recorded blobs (1 without a recorded CRC-32C)") {
		t.Fatalf("fsck of an intact legacy blob: %d problems\n%s", n, out)
	}

	flipStoredByte(t, e, oldID)
	n, out := fsckEnv(t, e)
	if n != 1 || !strings.Contains(out, "problem: blob "+oldID.String()+": content does not hash to its ID (corrupt") {
		t.Fatalf("fsck of a damaged legacy blob: %d problems\n%s", n, out)
	}

	// A legacy blob a client misnamed (the old lying-client case) is reported the same way.
	misnamed := coffer.BlobID(sha256.Sum256([]byte("something else")))
	legacy(misnamed, []byte("bytes that do not hash to the claimed ID"))
	if n, out := fsckEnv(t, e); n != 2 || !strings.Contains(out, misnamed.String()+": content does not hash to its ID") {
		t.Fatalf("fsck of a misnamed legacy blob: %d problems\n%s", n, out)
	}
}
