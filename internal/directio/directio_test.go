package directio

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
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

// TestOpenFile: OpenFile asks for direct I/O where supported; a file system refusing it at open
// (EINVAL, simulated) gets an ordinary file; other errors are returned as they are.
func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*Align/16+1) // unaligned tail
	check := func(name string, f *os.File) {
		t.Helper()
		w := NewWriter(f, NewPool(Align))
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, data) {
			t.Fatalf("%s: content differs", name)
		}
	}
	f, err := OpenFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && !NewWriter(f, NewPool(Align)).Direct() {
		t.Logf("O_DIRECT refused on %s", dir)
	}
	check("a", f)

	var opens []int
	refuse := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		opens = append(opens, flag)
		if directFlag != 0 && flag&directFlag != 0 {
			os.WriteFile(name, nil, perm) // a refused open may have created the file
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
		}
		return os.OpenFile(name, flag, perm)
	}
	flags := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	f, err = openFile(refuse, filepath.Join(dir, "b"), flags, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if directFlag != 0 && (len(opens) != 2 || opens[0] != flags|directFlag || opens[1] != flags) {
		t.Fatalf("opens with flags %#x, want direct then %#x", opens, flags)
	}
	check("b", f)

	if _, err := OpenFile(filepath.Join(dir, "missing", "c"), flags, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open in a missing folder: %v", err)
	}
}

// TestWriteRefused: a direct write the kernel refuses with EINVAL (here: an unaligned buffer
// address, as a file system without direct I/O support refuses any) is written ordinarily, and
// the writer stays ordinary.
func TestWriteRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, NewPool(Align))
	if !w.Direct() {
		t.Skip("no direct I/O here")
	}
	data := AlignedBuf(3*Align + 1)[1:] // 3 aligned lengths at an unaligned address
	for i := range data {
		data[i] = byte(i)
	}
	if err := w.writeAll(data); err != nil {
		t.Fatal(err)
	}
	if w.Direct() { // a device without DMA alignment constraints takes it
		t.Log("the unaligned direct write was accepted: fallback not exercised")
	}
	if _, err := w.Write(data[:5]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, append(bytes.Clone(data), data[:5]...)) {
		t.Fatal("content differs")
	}
}
