package client

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/format"
	"coffer/internal/directio"
)

// smallFile returns a dlFile for content split into default-size chunks, as the sink hands it
// to writeSmall, writing to dir/name.
func smallFile(dir, name string, content []byte) *dlFile {
	cs := format.DefaultChunkSize
	ct := &format.Content{Size: uint64(len(content)), ChunkSize: uint32(cs), Hash: sha256.Sum256(content),
		Chunks: make([]format.ChunkRef, format.ChunkCount(uint64(len(content)), uint32(cs)))}
	f := &dlFile{remote: "/d/" + name, local: filepath.Join(dir, name), ct: ct,
		n:       &node{body: &format.Body{Name: name, Mode: 0o640, MTime: time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()}},
		partial: filepath.Join(dir, "."+name+partialSuffix)}
	for len(content) > cs {
		f.parts = append(f.parts, content[:cs])
		content = content[cs:]
	}
	if len(content) > 0 {
		f.parts = append(f.parts, content)
	}
	return f
}

// TestWriteSmall writes small files of sizes around the direct-write threshold, the buffer
// size and the 4 KiB alignment: each partial file holds the content with its mode and mtime,
// and (where the file system takes direct writes) the files written directly left no more than
// their unaligned tail in the page cache.
func TestWriteSmall(t *testing.T) {
	dir := t.TempDir()
	d := &downloader{spool: directio.NewPool(smallWriteBuf)}
	direct := directSupported(t, dir)
	for _, n := range []int{0, 1, 4096, directMin - 1, directMin, directMin + 1, 1<<20 - 1, 1 << 20, 1<<20 + 4097,
		smallWriteBuf, smallWriteBuf + 1, 3<<20 + 5, 4<<20 - 3, 4 << 20} {
		content := make([]byte, n)
		rand.Read(content)
		name := "f" + strings.Repeat("x", n%7)
		f := smallFile(dir, name, content)
		if err := d.writeSmall(f); err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if cached, ok := cachedPages(t, f.partial); ok && direct && n >= directMin {
			if tail := min(1, n%directio.Align); cached > tail {
				t.Fatalf("size %d: %d pages in the page cache after a direct write", n, cached)
			}
		}
		got, err := os.ReadFile(f.partial)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("size %d: partial file holds %d bytes (%v)", n, len(got), err)
		}
		st, _ := os.Stat(f.partial)
		if st.Mode().Perm() != 0o640 || st.ModTime().UnixNano() != f.n.body.MTime {
			t.Fatalf("size %d: mode %v mtime %v", n, st.Mode(), st.ModTime())
		}
		os.Remove(f.partial)
	}
}

// TestWriteSmallMismatch: a small file whose chunks do not match its whole-file hash fails with
// coffer.ErrAuth naming it, and nothing is written (no partial file, destination untouched).
func TestWriteSmallMismatch(t *testing.T) {
	for _, n := range []int{100, directMin, 1<<20 + 3} {
		dir := t.TempDir()
		d := &downloader{spool: directio.NewPool(smallWriteBuf)}
		content := make([]byte, n)
		rand.Read(content)
		f := smallFile(dir, "a", content)
		if err := os.WriteFile(f.local, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		f.parts[len(f.parts)-1][0] ^= 1
		if err := d.writeSmall(f); !errors.Is(err, coffer.ErrAuth) || !strings.Contains(err.Error(), "/d/a") {
			t.Fatalf("size %d: %v", n, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("size %d: leftovers: %v", n, ents)
		}
		if b, _ := os.ReadFile(f.local); string(b) != "keep me" {
			t.Fatal("destination touched")
		}
	}
}

// directSupported reports whether dir's file system takes O_DIRECT writes.
func directSupported(t *testing.T, dir string) bool {
	f, err := directio.OpenFile(filepath.Join(dir, "probe"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	w := directio.NewWriter(f, directio.NewPool(directio.Align))
	defer w.Close()
	return w.Direct()
}
