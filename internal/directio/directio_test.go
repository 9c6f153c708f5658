package directio

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"
)

func TestAlignedBuf(t *testing.T) {
	for _, n := range []int{1, 4096, 100000, 1 << 20} {
		b := AlignedBuf(n)
		if len(b) != n || cap(b) != n || uintptr(unsafe.Pointer(&b[0]))%Align != 0 {
			t.Fatalf("AlignedBuf(%d): len %d cap %d addr %p", n, len(b), cap(b), &b[0])
		}
	}
}

// TestWriter writes files of many sizes through every method (Write, Free/Commit, aligned and
// unaligned Flush) and compares the bytes; on Linux it also checks the direct path was taken.
func TestWriter(t *testing.T) {
	dir := t.TempDir()
	pool := NewPool(64 << 10)
	rng := rand.New(rand.NewPCG(1, 2))
	probe, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	supported := setDirect(probe, true) == nil
	probe.Close()
	if runtime.GOOS == "linux" && !supported {
		t.Logf("O_DIRECT not supported on %s: only the fallback is tested", dir)
	}
	for i, size := range []int{0, 1, 4095, 4096, 4097, 64 << 10, 64<<10 + 1, 200000, 1 << 20, 3<<20 + 17} {
		want := make([]byte, size)
		for k := range want {
			want[k] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, "f")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w := NewWriter(f, pool)
		if supported && !w.Direct() {
			t.Fatalf("size %d: direct writes not used though supported", size)
		}
		rest := want
		for len(rest) > 0 {
			switch rng.IntN(3) {
			case 0:
				k := min(len(rest), rng.IntN(100000)+1)
				if _, err := w.Write(rest[:k]); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			case 1:
				free := w.Free()
				k := copy(free, rest[:min(len(rest), rng.IntN(len(free))+1)])
				if err := w.Commit(k); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			case 2:
				if i%2 == 0 { // aligned flush keeps direct writes on
					written := len(want) - len(rest)
					if written%Align == 0 {
						if err := w.Flush(); err != nil {
							t.Fatal(err)
						}
						if supported && !w.Direct() {
							t.Fatalf("aligned flush turned direct writes off")
						}
					}
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// The file is usable normally afterwards.
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append(want, 'x')) {
			t.Fatalf("size %d: content differs (got %d bytes)", size, len(got))
		}
		if _, err := w.Write([]byte("y")); err == nil {
			t.Fatal("write after Close accepted")
		}
	}
}

// TestWriterUnalignedStart: a writer starting at an unaligned offset writes ordinarily.
func TestWriterUnalignedStart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("abc"))
	w := NewWriter(f, NewPool(Align))
	if w.Direct() {
		t.Fatal("direct writes at offset 3")
	}
	data := bytes.Repeat([]byte("z"), 3*Align+5)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, append([]byte("abc"), data...)) {
		t.Fatal("content differs")
	}
}
