package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"coffer"
	"coffer/format"
)

// Units of a download: ranges of one blob covering consecutive chunks (of one or several files).
const (
	maxUnitSpan = 8 << 20  // bytes fetched per range request at most
	maxUnitGap  = 64 << 10 // unneeded bytes a range may skip over
)

// dlItem is one step of the in-order sink: a verified chunk of f, or (finish) the end of f.
type dlItem struct {
	f      *dlFile
	idx    uint64
	ref    format.ChunkRef
	finish bool
	plain  []byte // set by the fetcher
}

// dlUnit is one range request and the items the sink processes after it.
type dlUnit struct {
	blob     coffer.BlobID
	off, end uint64
	items    []dlItem
	buf      []byte
	err      error
	ready    chan struct{}
	// refs counts the holders of buf (fetchUnits while the sink runs, plus writers of small
	// files whose chunks point into it); the last release returns buf to pool.
	refs atomic.Int32
	pool *bufPool
}

// release drops one reference to u's buffer.
func (u *dlUnit) release() {
	if u.refs.Add(-1) == 0 && u.buf != nil {
		u.pool.put(u.buf)
		u.buf = nil
	}
}

// bufPool recycles the range buffers of one download: faulting in fresh pages for every range
// costs more CPU than decrypting them, and reuse keeps the heap (and RSS) at the window's size.
type bufPool struct{ free chan []byte }

func newBufPool(n int) *bufPool { return &bufPool{free: make(chan []byte, n)} }

// get returns a buffer of length n (recycled if one is large enough).
func (p *bufPool) get(n uint64) []byte {
	select {
	case b := <-p.free:
		if uint64(cap(b)) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n, max(n, packCap))
}

func (p *bufPool) put(b []byte) {
	select {
	case p.free <- b[:0]:
	default:
	}
}

// unitBuilder groups chunks into units in sink order.
type unitBuilder struct {
	units []*dlUnit
}

func (b *unitBuilder) chunk(f *dlFile, idx uint64, ref format.ChunkRef) {
	end := ref.Offset + uint64(ref.Length)
	var u *dlUnit
	if n := len(b.units); n > 0 {
		u = b.units[n-1]
	}
	if u == nil || u.blob != ref.Blob || u.end == 0 || ref.Offset < u.end || ref.Offset-u.end > maxUnitGap || end-u.off > maxUnitSpan {
		u = &dlUnit{blob: ref.Blob, off: ref.Offset, end: end}
		b.units = append(b.units, u)
	}
	u.end = end
	u.items = append(u.items, dlItem{f: f, idx: idx, ref: ref})
	if idx == f.start {
		f.firstUnit = len(b.units) - 1
	}
}

// finish ends f's items; f.oneUnit tells whether all of them landed in one unit.
func (b *unitBuilder) finish(f *dlFile) {
	if len(b.units) == 0 {
		b.units = append(b.units, &dlUnit{})
	}
	u := b.units[len(b.units)-1]
	u.items = append(u.items, dlItem{f: f, finish: true})
	f.oneUnit = f.start == 0 && (len(f.ct.Chunks) == 0 || f.firstUnit == len(b.units)-1)
}

// fetchUnits fetches and verifies units with cfg.Parallel requests in flight and hands them to
// sink strictly in order. At most 2 × Parallel units are held in memory.
func (c *Client) fetchUnits(ctx context.Context, units []*dlUnit, sink func(*dlUnit) error) (err error) {
	defer func() { err = c.verdict(stageContent, err) }() // failure alerts (alert.go)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	window := make(chan struct{}, 2*c.cfg.Parallel)
	jobs := make(chan *dlUnit)
	pool := newBufPool(2*c.cfg.Parallel + smallWriters)
	for _, u := range units {
		u.ready = make(chan struct{})
		u.pool = pool
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		for _, u := range units {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	for i := 0; i < c.cfg.Parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range jobs {
				u.err = c.fetchUnit(ctx, u)
				close(u.ready)
			}
		}()
	}
	defer wg.Wait()
	for _, u := range units {
		select {
		case <-u.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		if u.err != nil {
			return u.err
		}
		u.refs.Add(1)
		err := sink(u)
		for i := range u.items {
			u.items[i].plain = nil
		}
		u.release()
		<-window
		if err != nil {
			return err
		}
	}
	return nil
}

// fetchUnit downloads a unit's byte range and opens every chunk in place (AEAD with the chunk
// index and final flag). Any failure names the file and wraps coffer.ErrAuth, except server
// errors (not found, unavailable) and cancellation.
func (c *Client) fetchUnit(ctx context.Context, u *dlUnit) error {
	if u.end == 0 {
		return nil
	}
	what := func() string {
		for _, it := range u.items {
			if !it.finish {
				return it.f.remote
			}
		}
		return "?"
	}
	n := u.end - u.off
	var buf []byte
	var err error
	for attempt := 0; attempt < c.attempts(3); attempt++ {
		if buf, err = c.getRange(ctx, u.blob, u.off, n, u.pool); err == nil || ctx.Err() != nil || !errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("client: download %s: blob %s is shorter than its chunk list: %w", what(), u.blob, coffer.ErrAuth)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("client: download %s: %w", what(), err)
	}
	u.buf = buf
	for i := range u.items {
		it := &u.items[i]
		if it.finish {
			continue
		}
		ct := it.f.ct
		if want := format.ChunkPlainLen(ct.Size, ct.ChunkSize, it.idx) + 16; it.ref.Length != want {
			return fmt.Errorf("client: download %s: chunk %d has length %d, want %d: %w", it.f.remote, it.idx, it.ref.Length, want, coffer.ErrAuth)
		}
		lo := it.ref.Offset - u.off
		seg := buf[lo : lo+uint64(it.ref.Length)]
		last := it.idx == uint64(len(ct.Chunks))-1
		pt, err := it.f.ciph.Open(seg[:0], seg, it.idx, last)
		if err != nil {
			return fmt.Errorf("client: download %s: %w", it.f.remote, err)
		}
		it.plain = pt
	}
	return nil
}

// getRange reads exactly n bytes at off of a blob. A short body is io.ErrUnexpectedEOF.
func (c *Client) getRange(ctx context.Context, id coffer.BlobID, off, n uint64, pool *bufPool) ([]byte, error) {
	h := http.Header{}
	h.Set("Range", "bytes="+strconv.FormatUint(off, 10)+"-"+strconv.FormatUint(off+n-1, 10))
	resp, err := c.http.do(ctx, call{method: "GET", path: c.blobPath(id), header: h, retry: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body := io.Reader(resp.Body)
	if resp.StatusCode == http.StatusOK { // range ignored: skip to off
		if _, err := io.CopyN(io.Discard, body, int64(off)); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
	} else if resp.StatusCode != http.StatusPartialContent {
		return nil, fmt.Errorf("blob %s: unexpected HTTP status %d: %w", id, resp.StatusCode, coffer.ErrCorrupt)
	}
	buf := pool.get(n)
	if _, err := io.ReadFull(body, buf); err != nil {
		pool.put(buf)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, io.ErrUnexpectedEOF
	}
	return buf, nil
}
