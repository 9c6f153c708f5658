package client

import (
	"fmt"
	"io"
	"os"
	"sync"

	"coffer"
)

// Small files are opened and read ahead by prefetchWorkers goroutines (opening a file costs far
// more than reading 4 KiB of it), at most prefetchWindow files and prefetchMax bytes each, so the
// single reader that hashes and packs them in order never waits for the filesystem.
const (
	prefetchWorkers = 4
	prefetchWindow  = 256
	prefetchMax     = 64 << 10
)

// prefetch is one small file read ahead.
type prefetch struct {
	ready   chan struct{}
	data    []byte
	fi      os.FileInfo
	changed bool // size or mtime changed while it was read
	err     error
}

// startPrefetch marks the small files and starts the workers reading them in order.
func (u *uploader) startPrefetch(files []*upFile, wg *sync.WaitGroup) {
	var small []*upFile
	for _, f := range files {
		if f.size > 0 && f.size <= prefetchMax {
			f.pre = &prefetch{ready: make(chan struct{})}
			small = append(small, f)
		}
	}
	if len(small) == 0 {
		return
	}
	u.preTokens = make(chan struct{}, prefetchWindow)
	jobs := make(chan *upFile)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		for _, f := range small {
			select {
			case u.preTokens <- struct{}{}:
			case <-u.ctx.Done():
				return
			}
			select {
			case jobs <- f:
			case <-u.ctx.Done():
				return
			}
		}
	}()
	for i := 0; i < prefetchWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				f.pre.read(f.local)
				close(f.pre.ready)
			}
		}()
	}
}

func (p *prefetch) read(local string) {
	fh, err := os.Open(local)
	if err != nil {
		p.err = fmt.Errorf("client: upload: %w", err)
		return
	}
	defer fh.Close()
	if p.fi, err = fh.Stat(); err != nil {
		p.err = fmt.Errorf("client: upload: %w", err)
		return
	}
	if !p.fi.Mode().IsRegular() || p.fi.Size() > prefetchMax {
		p.changed = true
		return
	}
	p.data = make([]byte, p.fi.Size())
	if _, err := io.ReadFull(fh, p.data); err != nil {
		p.changed = true
		return
	}
	fi2, err := fh.Stat()
	p.changed = err != nil || fi2.Size() != p.fi.Size() || !fi2.ModTime().Equal(p.fi.ModTime())
}

// prefetched waits for f's read-ahead and frees its window slot.
func (u *uploader) prefetched(f *upFile) (*prefetch, error) {
	select {
	case <-f.pre.ready:
	case <-u.ctx.Done():
		return nil, u.err()
	}
	<-u.preTokens
	p := f.pre
	if p.err != nil {
		return nil, p.err
	}
	if p.fi == nil || p.changed && p.data == nil {
		return nil, fmt.Errorf("client: upload %s: the file changed while it was read: %w", f.local, coffer.ErrConflict)
	}
	return p, nil
}
