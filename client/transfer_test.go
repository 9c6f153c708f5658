package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"coffer"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sameFile(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%d vs %d bytes)", a, b, len(x), len(y))
	}
	sa, _ := os.Stat(a)
	sb, _ := os.Stat(b)
	if !sa.ModTime().Equal(sb.ModTime()) {
		t.Fatalf("%s: mtime %v, want %v", b, sb.ModTime(), sa.ModTime())
	}
	if sa.Mode().Perm() != sb.Mode().Perm() {
		t.Fatalf("%s: mode %v, want %v", b, sb.Mode(), sa.Mode())
	}
}

func TestRoundTripSizes(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "alice")
	cs := format.DefaultChunkSize
	sizes := map[string]int{"empty": 0, "one": 1, "chunk": cs, "chunkplus": cs + 1, "ten": 10 << 20, "fivechunks": 5*cs - 7}
	src := t.TempDir()
	for name, n := range sizes {
		writeFile(t, filepath.Join(src, name), randBytes(n))
	}
	for name := range sizes {
		if _, err := c.Upload(ctx, []string{filepath.Join(src, name)}, "/"+name, client.TransferOptions{}); err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
	}
	dst := t.TempDir()
	for name, n := range sizes {
		e, err := c.Stat(ctx, "/"+name)
		if err != nil || e.Size != int64(n) || e.IsDir {
			t.Fatalf("stat %s: %+v %v", name, e, err)
		}
		res, err := c.Download(ctx, []string{"/" + name}, filepath.Join(dst, name), client.TransferOptions{})
		if err != nil || res.Files != 1 {
			t.Fatalf("download %s: %+v %v", name, res, err)
		}
		sameFile(t, filepath.Join(src, name), filepath.Join(dst, name))
		var buf bytes.Buffer
		if err := c.Cat(ctx, "/"+name, &buf); err != nil {
			t.Fatalf("cat %s: %v", name, err)
		}
		if want, _ := os.ReadFile(filepath.Join(src, name)); !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("cat %s differs", name)
		}
	}
	// No partial files left behind.
	ents, _ := os.ReadDir(dst)
	if len(ents) != len(sizes) {
		t.Fatalf("download folder holds %d entries, want %d", len(ents), len(sizes))
	}
}

func TestTreeRoundTripAndResumeSkip(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "bob")
	src := filepath.Join(t.TempDir(), "photos")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello"))
	writeFile(t, filepath.Join(src, "sub", "b.bin"), randBytes(3000))
	writeFile(t, filepath.Join(src, "sub", "deeper", "c.bin"), randBytes(2<<20))
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mkdir(ctx, "/backup", false); err != nil {
		t.Fatal(err)
	}
	res, err := c.Upload(ctx, []string{src}, "/backup", client.TransferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 3 || res.Folders != 4 || len(res.Warnings) != 1 {
		t.Fatalf("upload result %+v", res)
	}
	if _, err := c.Stat(ctx, "/backup/photos/link"); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("symlink uploaded: %v", err)
	}
	// A re-run skips everything.
	res, err = c.Upload(ctx, []string{src}, "/backup", client.TransferOptions{})
	if err != nil || res.Skipped != 3 || res.Files != 0 {
		t.Fatalf("re-run: %+v %v", res, err)
	}
	// A changed file without Overwrite is refused, with Overwrite becomes version 2.
	time.Sleep(10 * time.Millisecond)
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello again"))
	if _, err := c.Upload(ctx, []string{src}, "/backup", client.TransferOptions{}); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("changed file without overwrite: %v", err)
	}
	if res, err = c.Upload(ctx, []string{src}, "/backup", client.TransferOptions{Overwrite: true}); err != nil || res.Files != 1 {
		t.Fatalf("overwrite: %+v %v", res, err)
	}
	vs, err := c.Versions(ctx, "/backup/photos/a.txt")
	if err != nil || len(vs) != 2 || !vs[0].Current || vs[0].Size != 11 || vs[1].Size != 5 {
		t.Fatalf("versions: %+v %v", vs, err)
	}
	if err := c.RestoreVersion(ctx, "/backup/photos/a.txt", vs[1].Version); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.Cat(ctx, "/backup/photos/a.txt", &buf); err != nil || buf.String() != "hello" {
		t.Fatalf("restored version: %q %v", buf.String(), err)
	}
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello"))

	// Download the tree into an existing folder.
	dst := t.TempDir()
	res, err = c.Download(ctx, []string{"/backup/photos"}, dst, client.TransferOptions{})
	if err != nil || res.Files != 3 {
		t.Fatalf("download: %+v %v", res, err)
	}
	sameFile(t, filepath.Join(src, "sub", "deeper", "c.bin"), filepath.Join(dst, "photos", "sub", "deeper", "c.bin"))
	sameFile(t, filepath.Join(src, "sub", "b.bin"), filepath.Join(dst, "photos", "sub", "b.bin"))
	if st, err := os.Stat(filepath.Join(dst, "photos", "empty")); err != nil || !st.IsDir() {
		t.Fatalf("empty folder: %v", err)
	}
	// Again: identical files are skipped; a different local file is refused without Overwrite.
	res, err = c.Download(ctx, []string{"/backup/photos"}, dst, client.TransferOptions{})
	if err != nil || res.Skipped != 3 {
		t.Fatalf("download again: %+v %v", res, err)
	}
	writeFile(t, filepath.Join(dst, "photos", "a.txt"), []byte("local edit"))
	if _, err := c.Download(ctx, []string{"/backup/photos"}, dst, client.TransferOptions{}); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("download over a changed file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "photos", "a.txt")); string(b) != "local edit" {
		t.Fatal("local file touched")
	}
	if _, err := c.Download(ctx, []string{"/backup/photos"}, dst, client.TransferOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "photos", "a.txt")); string(b) != "hello" {
		t.Fatalf("overwrite: %q", b)
	}
}
