// Package directio writes big files sequentially past the page cache where the operating system
// allows it (Linux O_DIRECT), with one write in flight while the next buffer fills.
//
// Writing through the page cache costs a kernel copy into freshly allocated cache pages and, on
// virtual machines, often far more than the copy itself; data that is fsynced right after and
// not read back soon (blobs on the server, downloaded files on the client) gains nothing from
// it. Direct writes go from the writer's own aligned, reused buffers to the device. Where direct
// I/O is not supported (other systems, file systems that refuse it, unaligned offsets), the
// Writer falls back to ordinary writes: the bytes written are the same either way. Direct I/O
// is no durability guarantee: callers still fsync.
package directio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// Align is the alignment of direct writes: buffer addresses, file offsets and lengths.
const Align = 4096

// OpenFile is os.OpenFile asking for direct I/O where the system offers it (Linux: O_DIRECT), so
// a Writer on the file needs no fcntl(2) to turn it on. A file system that refuses direct I/O
// at open (EINVAL) gets the file opened again without it, so flag must not contain O_EXCL
// (the refused open may have created the file). Writers find out which with Direct.
func OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return openFile(os.OpenFile, name, flag, perm)
}

// openFile is OpenFile with the open call given (tests refuse direct I/O with it).
func openFile(open func(string, int, os.FileMode) (*os.File, error), name string, flag int, perm os.FileMode) (*os.File, error) {
	if directFlag != 0 {
		f, err := open(name, flag|directFlag, perm)
		if err == nil || !isInval(err) {
			return f, err
		}
	}
	return open(name, flag, perm)
}

// AlignedBuf returns a zeroed buffer of n bytes whose first byte is Align-aligned.
func AlignedBuf(n int) []byte {
	b := make([]byte, n+Align)
	off := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % Align); r != 0 {
		off = Align - r
	}
	return b[off : off+n : off+n]
}

// Pool recycles a Writer's buffers (each of the pool's size). It is safe for concurrent use.
type Pool struct {
	size int
	p    sync.Pool
}

// NewPool returns a pool of aligned buffers of size bytes (rounded up to a multiple of Align).
func NewPool(size int) *Pool {
	size = (size + Align - 1) / Align * Align
	pl := &Pool{size: size}
	pl.p.New = func() any { b := AlignedBuf(size); return &b }
	return pl
}

func (p *Pool) get() []byte  { return *(p.p.Get().(*[]byte)) }
func (p *Pool) put(b []byte) { p.p.Put(&b) }

// Writer writes sequentially to a file from its current offset. Methods must not be called
// concurrently. Close (or Flush) must be called for the last bytes to reach the file.
type Writer struct {
	f      *os.File
	pool   *Pool
	direct bool

	cur, spare []byte
	n          int
	inflight   chan error // result of the write in flight, if any
	err        error      // sticky
}

// NewWriter returns a Writer appending to f at its current offset, which must be a multiple of
// Align for direct writes to be used (otherwise they are not). Buffers come from pool.
func NewWriter(f *os.File, pool *Pool) *Writer {
	w := &Writer{f: f, pool: pool}
	if off, err := f.Seek(0, 1); err == nil && off%Align == 0 {
		w.direct = setDirect(f, true) == nil
	}
	return w
}

// Direct reports whether the writer currently bypasses the page cache.
func (w *Writer) Direct() bool { return w.direct }

// Free returns the free part of the current buffer (never empty), for the caller to fill and
// then Commit: filling it directly saves a copy.
func (w *Writer) Free() []byte {
	if w.cur == nil {
		w.cur = w.pool.get()
	}
	return w.cur[w.n:]
}

// Commit records that the first k bytes of Free() were filled, and starts writing the buffer
// once it is full.
func (w *Writer) Commit(k int) error {
	if w.err != nil {
		return w.err
	}
	w.n += k
	if w.n == len(w.cur) {
		return w.startWrite()
	}
	return nil
}

// Write copies p into the writer's buffers, writing each buffer as it fills.
func (w *Writer) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		if w.err != nil {
			return done, w.err
		}
		k := copy(w.Free(), p[done:])
		done += k
		if err := w.Commit(k); err != nil {
			return done, err
		}
	}
	return done, nil
}

// startWrite hands the current buffer to a background write (after the previous one finished)
// and continues in the spare buffer.
func (w *Writer) startWrite() error {
	if err := w.wait(); err != nil {
		return err
	}
	buf := w.cur[:w.n]
	ch := make(chan error, 1)
	go func() { ch <- w.writeAll(buf) }()
	w.inflight = ch
	if w.spare == nil {
		w.spare = w.pool.get()
	}
	w.cur, w.spare, w.n = w.spare, w.cur, 0
	return nil
}

// wait waits for the write in flight.
func (w *Writer) wait() error {
	if w.inflight != nil {
		err := <-w.inflight
		w.inflight = nil
		if err != nil && w.err == nil {
			w.err = err
		}
	}
	return w.err
}

// writeAll writes b at the file's offset. A direct write the file system refuses (EINVAL:
// alignment it does not support) is retried as an ordinary write, and the writer stays
// ordinary; so does an unaligned tail.
func (w *Writer) writeAll(b []byte) error {
	if w.direct {
		aligned := len(b) / Align * Align
		if aligned > 0 {
			_, err := w.f.Write(b[:aligned])
			if err == nil {
				b = b[aligned:]
			} else if !isInval(err) {
				return fmt.Errorf("directio: %w", err)
			}
			// EINVAL wrote nothing: everything goes through the page cache below.
		}
		if len(b) > 0 {
			if err := setDirect(w.f, false); err != nil {
				return fmt.Errorf("directio: %w", err)
			}
			w.direct = false
		}
	}
	if len(b) == 0 {
		return nil
	}
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("directio: %w", err)
	}
	return nil
}

// Flush writes every buffered byte and waits for it. After an unaligned flush the writer no
// longer writes directly.
func (w *Writer) Flush() error {
	if err := w.wait(); err != nil {
		return err
	}
	if w.n > 0 {
		if err := w.writeAll(w.cur[:w.n]); err != nil {
			w.err = err
			return err
		}
		w.n = 0
	}
	return nil
}

// Close flushes and returns the buffers to the pool. It does not close the file; it turns
// direct writes off, so the file can be used normally afterwards.
func (w *Writer) Close() error {
	err := w.Flush()
	w.wait() // a failed Flush may leave a write in flight: never return its buffer early
	if w.direct {
		if derr := setDirect(w.f, false); derr != nil && err == nil {
			err = fmt.Errorf("directio: %w", derr)
		}
		w.direct = false
	}
	for _, b := range [][]byte{w.cur, w.spare} {
		if b != nil {
			w.pool.put(b[:cap(b)])
		}
	}
	w.cur, w.spare, w.n = nil, nil, 0
	if w.err == nil {
		w.err = errClosed
	}
	return err
}

var errClosed = errors.New("directio: writer closed")
