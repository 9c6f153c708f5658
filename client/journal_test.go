package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"coffer"
	"coffer/format"
)

// TestJournalTags: tags survive a reload, a chunk journaled again with another tag is a conflict
// (its ciphertext must not be sent), verifyJournal accepts the unchanged file and refuses a
// changed one, and a journal of the older layout (plaintext hash lines) is not trusted.
func TestJournalTags(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	const cs = format.DefaultChunkSize
	data := make([]byte, 3*cs+5)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	key := format.NewContentKey()
	ciph := key.Cipher()
	n := format.ChunkCount(uint64(len(data)), cs)
	tag := func(i uint64, b []byte) [16]byte {
		plen := int(format.ChunkPlainLen(uint64(len(b)), cs, i))
		buf := make([]byte, plen+16)
		copy(buf, b[int(i)*cs:])
		return chunkTag(ciph, buf, plen, i, i == n-1)
	}
	jp := filepath.Join(dir, "journal", "x.journal")
	j, err := createJournal(jp, journalHeader{Local: src, Size: int64(len(data)), Key: strings.Repeat("00", 32), ChunkSize: cs})
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent writers share fsyncs and lose no line.
	var wg sync.WaitGroup
	for i := uint64(0); i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := j.recordTags([]uint64{i}, [][16]byte{tag(i, data)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := j.recordTags([]uint64{1}, [][16]byte{tag(1, data)}); err != nil {
		t.Fatalf("same tag again: %v", err)
	}
	bad := tag(1, data)
	bad[0] ^= 1
	if err := j.recordTags([]uint64{1}, [][16]byte{bad}); !errors.Is(err, coffer.ErrConflict) {
		t.Fatalf("changed tag: %v, want ErrConflict", err)
	}
	j.close(false)

	j2, err := loadJournal(jp)
	if err != nil || len(j2.tags) != int(n) {
		t.Fatalf("reload: %v, %d tags", err, len(j2.tags))
	}
	fh, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if ok, err := verifyJournal(fh, j2, ciph, uint64(len(data))); !ok || err != nil {
		t.Fatalf("unchanged file: %v %v", ok, err)
	}
	data[2*cs+1] ^= 1
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := verifyJournal(fh, j2, ciph, uint64(len(data))); ok || err != nil {
		t.Fatalf("changed file accepted: %v %v", ok, err)
	}
	if ok, _ := verifyJournal(fh, j2, format.NewContentKey().Cipher(), uint64(len(data))); ok {
		t.Fatal("other key accepted")
	}

	old := `{"local":"/a","remote":"/b","size":3,"mtime":1,"key":"00","chunk_size":1048576}` + "\nh 0 " + strings.Repeat("00", 32) + "\n"
	op := filepath.Join(dir, "old.journal")
	os.WriteFile(op, []byte(old), 0o600)
	if _, err := loadJournal(op); !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("old-layout journal: %v, want ErrCorrupt (start over)", err)
	}
}
