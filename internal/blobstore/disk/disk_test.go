package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"coffer"
	"coffer/internal/blobstore"
	"coffer/internal/blobstore/blobstoretest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	blobstoretest.Run(t, func(t *testing.T) blobstore.Store {
		s := newStore(t)
		t.Cleanup(func() {
			// Whatever the suite did, no temporary file may be left behind.
			if n := countFiles(t, s.tmp); n != 0 {
				t.Errorf("%d temporary files left in %s", n, s.tmp)
			}
		})
		return s
	})
}

// countFiles counts regular files below dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return n
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("layout")
	id, err := blobstoretest.PutBytes(t.Context(), s, b)
	if err != nil {
		t.Fatal(err)
	}
	h := id.String()
	got, err := os.ReadFile(filepath.Join(dir, "blobs", h[:2], h[2:4], h))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("blob not at blobs/ab/cd/<id>: %v", err)
	}
}

// TestTempLayout: an upload in progress is a temporary file in tmp/ab/ (ab: the blob's first
// byte), not in one folder shared by every upload; a temporary folder removed behind the store's
// back is made again.
func TestTempLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("an upload in progress")
	id := coffer.BlobID(sha256.Sum256(b))
	h := id.String()
	for round := range 2 {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := s.Put(t.Context(), id, pr, int64(len(b)), crc32.Checksum(b, blobstore.CRC32C))
			done <- err
		}()
		if _, err := pw.Write(b[:5]); err != nil { // the Put has its temporary file now
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Join(dir, "tmp", h[:2]))
		if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "put-") {
			t.Fatalf("round %d: tmp/%s/ holds %v (%v); want one put-* file", round, h[:2], entries, err)
		}
		if top, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(top) != 1 || !top[0].IsDir() {
			t.Fatalf("round %d: tmp/ holds %v; want only the folder %s", round, top, h[:2])
		}
		pw.Write(b[5:])
		pw.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if round == 0 { // again, with the temporary folder gone and the blob stored (a re-upload)
			if err := os.RemoveAll(filepath.Join(dir, "tmp", h[:2])); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, "blobs", h[:2], h[2:4], h)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := countFiles(t, filepath.Join(dir, "tmp")); n != 0 {
		t.Fatalf("%d temporary files left", n)
	}
}

func TestNewRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "tmp", "put-123")
	if err := os.WriteFile(stale, []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp", "ab"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp", "ab", "put-456"), []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp", "junkdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Fatalf("New left %d entries in tmp/", len(entries))
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(""); !errors.Is(err, coffer.ErrInvalid) {
		t.Errorf("New(\"\") = %v, want ErrInvalid", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(file); err == nil {
		t.Error("New on a regular file succeeded")
	}
}

func TestFailedPutLeavesNoFiles(t *testing.T) {
	s := newStore(t)
	b := bytes.Repeat([]byte("x"), 100_000)
	sum := crc32.Checksum(b, blobstore.CRC32C)
	bad := []struct {
		name string
		r    io.Reader
		size int64
		crc  uint32
	}{
		{"short", bytes.NewReader(b[:10]), int64(len(b)), sum},
		{"long", bytes.NewReader(b), 10, crc32.Checksum(b[:10], blobstore.CRC32C)},
		{"wrong crc", bytes.NewReader(b), int64(len(b)), sum + 1},
		{"reader error", io.MultiReader(bytes.NewReader(b[:500]), errReader{}), int64(len(b)), sum},
	}
	for _, tc := range bad {
		if _, err := s.Put(t.Context(), sha256.Sum256(b), tc.r, tc.size, tc.crc); err == nil {
			t.Errorf("%s: Put succeeded", tc.name)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := blobstoretest.PutBytes(ctx, s, b); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with cancelled ctx = %v", err)
	}
	if n := countFiles(t, s.blobs); n != 0 {
		t.Errorf("%d files under blobs/ after failed puts", n)
	}
	if n := countFiles(t, s.tmp); n != 0 {
		t.Errorf("%d files under tmp/ after failed puts", n)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestListSkipsForeignFiles(t *testing.T) {
	s := newStore(t)
	b := []byte("real")
	id, err := blobstoretest.PutBytes(t.Context(), s, b)
	if err != nil {
		t.Fatal(err)
	}
	h := id.String()
	// A stray file in the right directory, a blob name in the wrong directory, junk directories.
	junk := []string{
		filepath.Join(s.blobs, h[:2], h[2:4], "README"),
		filepath.Join(s.blobs, "00", "00", h),
		filepath.Join(s.blobs, "zz", "00", strings.Repeat("0", 64)),
		filepath.Join(s.blobs, "x.txt"),
	}
	for _, p := range junk {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var got []coffer.BlobID
	if err := s.List(t.Context(), func(id coffer.BlobID, _ int64) error { got = append(got, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != id {
		t.Fatalf("List = %v, want just %s", got, id)
	}
}

func TestListCancelled(t *testing.T) {
	s := newStore(t)
	b := []byte("a blob")
	if _, err := blobstoretest.PutBytes(t.Context(), s, b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.List(ctx, func(coffer.BlobID, int64) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with cancelled ctx = %v", err)
	}
}

// TestDiskFull fills a 2 MiB tmpfs: the put fails with ErrUnavailable (ENOSPC kept in the chain),
// leaves no temporary file, and the store keeps working once space is freed.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		skipOrFail(t, "not root: cannot mount a tmpfs")
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		skipOrFail(t, "mount tmpfs: "+err.Error()+": "+string(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{7}, 3<<20)
	_, err = blobstoretest.PutBytes(t.Context(), s, big)
	if !errors.Is(err, coffer.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put of 3 MiB into 2 MiB = %v, want ErrUnavailable wrapping ENOSPC", err)
	}
	if n := countFiles(t, s.tmp) + countFiles(t, s.blobs); n != 0 {
		t.Fatalf("%d files left after the failed put", n)
	}
	small := bytes.Repeat([]byte{8}, 1<<20)
	id, err := blobstoretest.PutBytes(t.Context(), s, small)
	if err != nil {
		t.Fatalf("Put of 1 MiB after freeing space: %v", err)
	}
	if id != sha256.Sum256(small) {
		t.Fatal("wrong id")
	}
}

func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func BenchmarkPut4MiB(b *testing.B) {
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, err := blobstoretest.PutBytes(b.Context(), s, data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGetWriteTo: the ranged reader copies exactly its section through WriteTo (the sendfile
// path), also after part of it was read.
func TestGetWriteTo(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i * 13)
	}
	id, err := blobstoretest.PutBytes(ctx, s, data)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, id, 1000, 50000)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 10)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, err := io.Copy(&out, rc)
	if err != nil || n != 50000-10 {
		t.Fatalf("copy: %d %v", n, err)
	}
	if got := append(head, out.Bytes()...); !bytes.Equal(got, data[1000:51000]) {
		t.Fatal("section content differs")
	}
	if k, err := rc.Read(head); k != 0 || err != io.EOF {
		t.Fatalf("read after the section: %d %v", k, err)
	}
}
