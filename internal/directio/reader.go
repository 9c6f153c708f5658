package directio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// ReadBuf is the size of a Reader's buffer: one read(2) of up to this many bytes at a time.
const ReadBuf = 1 << 20

var readBufs = sync.Pool{New: func() any { b := AlignedBuf(ReadBuf); return &b }}

// Reader reads the section [off, off+n) of a file past the page cache where the system allows
// it, through one aligned, pooled buffer: each read(2) covers whole Align blocks around the
// section, and the bytes outside it are dropped.
//
// Reading through the page cache costs, on virtual machines, far more than the copy when the
// cache pages are fresh: a blob read once from disk and sent to one client gains nothing from
// them (measured: the receiving process spent 1-2 CPU-s more per GiB copying out of sockets fed
// from freshly cached pages than from hot ones). Where direct reads are refused (other systems,
// file systems without O_DIRECT, EINVAL at the first read) the Reader reads through the cache:
// the bytes are the same either way.
type Reader struct {
	f        *os.File
	name     string
	pos, end int64   // next byte to deliver; end of the section
	buf      *[]byte // nil once closed
	win      []byte  // buffered bytes at pos
}

// OpenReader opens the section [off, off+n) of the file name for reading (see Reader). It does
// not check the section against the file's size: reading past the end returns
// io.ErrUnexpectedEOF.
func OpenReader(name string, off, n int64) (*Reader, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("directio: section [%d, +%d): %w", off, n, os.ErrInvalid)
	}
	f, err := OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return &Reader{f: f, name: name, pos: off, end: off + n, buf: readBufs.Get().(*[]byte)}, nil
}

// fill reads the blocks holding pos into the buffer.
func (r *Reader) fill() error {
	if r.buf == nil {
		return os.ErrClosed
	}
	start := r.pos &^ (Align - 1)
	want := min(int64(len(*r.buf)), (r.end+Align-1)&^(Align-1)-start)
	b := (*r.buf)[:want]
	m, err := r.f.ReadAt(b, start)
	if err != nil && isInval(err) && m == 0 {
		// The file system refused the direct read: read this file through the cache.
		if serr := setDirect(r.f, false); serr != nil {
			return fmt.Errorf("directio: %s: %w", r.name, serr)
		}
		m, err = r.f.ReadAt(b, start)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	lo := r.pos - start
	hi := min(int64(m), r.end-start)
	if hi <= lo {
		return io.ErrUnexpectedEOF // the file ends inside the section
	}
	r.win = b[lo:hi]
	return nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if len(r.win) == 0 {
		if r.pos >= r.end {
			return 0, io.EOF
		}
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.win)
	r.win = r.win[n:]
	r.pos += int64(n)
	return n, nil
}

// WriteTo implements io.WriterTo: one w.Write per buffer, no intermediate copy.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.pos < r.end || len(r.win) > 0 {
		if len(r.win) == 0 {
			if err := r.fill(); err != nil {
				return total, err
			}
		}
		n, err := w.Write(r.win)
		r.win = r.win[n:]
		r.pos += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Close closes the file and gives the buffer back. It is safe to call twice.
func (r *Reader) Close() error {
	if r.buf == nil {
		return nil
	}
	readBufs.Put(r.buf)
	r.buf, r.win = nil, nil
	return r.f.Close()
}
