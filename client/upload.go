package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// Packing: a big file's chunks go packChunks at a time into its own packs; small files (at most
// packChunks chunks) are packed together up to packCap ciphertext bytes, never split.
const (
	packChunks = 4
	packCap    = packChunks*(format.DefaultChunkSize+16) + 4096
)

// packEntry is one chunk inside a pack: plaintext at buf[off:off+plen], sealed in place.
type packEntry struct {
	f    *upFile
	idx  uint64
	off  int
	plen int
}

// upPack is a blob being assembled.
type upPack struct {
	buf     []byte
	n       int
	entries []packEntry
	files   []*upFile // distinct files with chunks in this pack
	big     *upFile   // non-nil: the pack holds consecutive chunks of this one file
}

// uploader runs one upload's pipeline: reader (plaintext hash) → Parallel workers (seal, journal
// tags, hash ciphertext, upload) → committer.
type uploader struct {
	c      *Client
	opts   TransferOptions
	ctx    context.Context
	cancel context.CancelCauseFunc

	tokens chan struct{} // bounds the pack buffers in use
	free   chan []byte
	work   chan *upPack
	done   chan *upFile

	cur       *upPack
	smallLeft int // sealed bytes of the small files not yet packed (sizes a small pack's buffer)
	scratch   []byte
	preTokens chan struct{} // read-ahead window of small files

	// dirs are the plan's new folders, until the first file commit (commitBatch) has created them
	// together with its files.
	dirs []*upDir

	mu      sync.Mutex
	files   int
	bytes   int64
	started []*upFile // files with a tracker, for Done(err) on failure
}

// Upload copies local files and folders (recursively) to remote, with cp semantics: if remote is
// an existing folder, each source goes inside it; otherwise a single source is written as remote.
//
// Existing remote files: one with the same name, size and modification time (to the nanosecond)
// whose content hashes like the local file (the local file is re-read and hashed; nothing is
// downloaded) is skipped (TransferResult.Skipped): this is what makes a re-run resume. Any other
// existing file is replaced by a new version with Overwrite, and is an error wrapping
// coffer.ErrExist without it (checked for every file before anything is uploaded). Symbolic
// links and special files are skipped with a warning.
//
// Chunks (1 MiB) are encrypted under a fresh content key per file version and packed into blobs
// of up to 4 MiB, Config.Parallel blobs in flight; file records are committed in batches (every
// 4,000 files, 200,000 chunks or 8 s, and at the end), each only after all its blobs were
// acknowledged. Memory stays around Parallel × 2 × 4 MiB whatever the file sizes. Files over 4 MiB are journaled in
// StateDir, so re-running an interrupted upload reuses the packs already stored.
func (c *Client) Upload(ctx context.Context, locals []string, remote string, opts TransferOptions) (TransferResult, error) {
	if tc, rel, err := c.routeWrite(ctx, remote); err != nil || tc != c {
		if err != nil {
			return TransferResult{}, err
		}
		return tc.Upload(ctx, locals, rel, opts)
	}
	var plan *upPlan
	err := c.withCachedView(ctx, func(v *view, cached bool) error {
		var err error
		plan, err = c.planUpload(ctx, v, locals, remote, opts)
		if err == nil && cached && plan.skipped > 0 {
			return errStale // a skip is never re-checked: decide it on the current head
		}
		return err
	})
	if err != nil {
		return TransferResult{}, err
	}
	res := TransferResult{Folders: plan.folders, Skipped: plan.skipped, Warnings: plan.warnings}
	if len(plan.warnings) > 0 {
		c.log.Warn("client: upload skipped links or special files", "count", len(plan.warnings))
	}
	if len(plan.files) == 0 {
		return res, c.createDirs(ctx, plan.dirs)
	}
	u := c.newUploader(ctx, opts)
	u.dirs = plan.dirs // created by the first file commit
	err = u.run(plan.files)
	res.Files, res.Bytes = u.files, u.bytes
	return res, err
}

func (c *Client) newUploader(ctx context.Context, opts TransferOptions) *uploader {
	nbuf := 2 * c.cfg.Parallel
	u := &uploader{c: c, opts: opts,
		tokens: make(chan struct{}, nbuf), free: make(chan []byte, nbuf),
		work: make(chan *upPack, c.cfg.Parallel), done: make(chan *upFile, 4096)}
	u.ctx, u.cancel = context.WithCancelCause(ctx)
	return u
}

func (u *uploader) fail(err error) {
	if err != nil {
		u.cancel(err)
	}
}

// err returns the pipeline's first failure.
func (u *uploader) err() error {
	if err := context.Cause(u.ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return u.ctx.Err()
}

func (u *uploader) run(files []*upFile) error {
	defer u.cancel(nil)
	for _, f := range files {
		if n := format.ChunkCount(uint64(max(f.size, 0)), format.DefaultChunkSize); n > 0 && n <= packChunks {
			u.smallLeft += int(f.size) + 16*int(n)
		}
	}
	var wg sync.WaitGroup
	u.startPrefetch(files, &wg)
	wg.Add(1)
	go func() { // reader
		defer wg.Done()
		defer close(u.work)
		for _, f := range files {
			if err := u.readFile(f); err != nil {
				u.fail(err)
				return
			}
		}
		u.fail(u.flush())
	}()
	var workers sync.WaitGroup
	for i := 0; i < u.c.cfg.Parallel; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for p := range u.work {
				if u.ctx.Err() != nil {
					u.release(p)
					continue
				}
				u.fail(u.sendPack(p))
			}
		}()
	}
	go func() { workers.Wait(); close(u.done) }()

	err := u.commitLoop()
	u.fail(err)
	wg.Wait()
	workers.Wait()
	for range u.done {
	}
	// commitLoop returns nil only after every file was committed.
	if err != nil {
		for _, f := range u.started {
			f.tracker.Done(err)
			if f.journal != nil {
				f.journal.close(false)
			}
		}
	}
	return err
}

// getBuf waits for a free pack buffer of at least n bytes (at most packCap). A few small files
// get a buffer of their size, not the 4 MiB a full pack needs.
func (u *uploader) getBuf(n int) ([]byte, error) {
	select {
	case u.tokens <- struct{}{}:
	case <-u.ctx.Done():
		return nil, u.err()
	}
	select {
	case b := <-u.free:
		if len(b) >= n {
			return b, nil
		}
	default:
	}
	return make([]byte, min(max(n, 0), packCap)), nil
}

func (u *uploader) release(p *upPack) {
	if p.buf == nil {
		return
	}
	u.free <- p.buf
	p.buf = nil
	<-u.tokens
}

// flush hands the current pack to the workers.
func (u *uploader) flush() error {
	p := u.cur
	u.cur = nil
	if p == nil || len(p.entries) == 0 {
		if p != nil {
			u.release(p)
		}
		return nil
	}
	select {
	case u.work <- p:
		return nil
	case <-u.ctx.Done():
		u.release(p)
		return u.err()
	}
}

func (u *uploader) newPack(big *upFile) error {
	n := packCap
	if big == nil {
		n = u.smallLeft // every small file still to come fits, or a full pack
	}
	b, err := u.getBuf(n)
	if err != nil {
		return err
	}
	u.cur = &upPack{buf: b, big: big}
	return nil
}

// readFile reads, hashes and packs one file's chunks.
func (u *uploader) readFile(f *upFile) error {
	var (
		fh  *os.File
		src io.Reader
		fi  os.FileInfo
		err error
	)
	if f.pre != nil { // read ahead by a prefetch worker
		pre, err := u.prefetched(f)
		if err != nil {
			return err
		}
		fi, src = pre.fi, bytes.NewReader(pre.data)
	} else {
		if fh, err = os.Open(f.local); err != nil {
			return fmt.Errorf("client: upload: %w", err)
		}
		defer fh.Close()
		if fi, err = fh.Stat(); err != nil {
			return fmt.Errorf("client: upload: %w", err)
		}
		src = fh
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("client: upload: %s is no longer a regular file: %w", f.local, coffer.ErrConflict)
	}
	f.size, f.mtime, f.mode = fi.Size(), fi.ModTime().UnixNano(), uint32(fi.Mode().Perm())
	size := uint64(f.size)
	const cs = format.DefaultChunkSize
	n := format.ChunkCount(size, cs)
	f.chunks = make([]format.ChunkRef, n)
	f.tracker = startTracker(u.opts.Progress, f.local, f.size)
	u.started = append(u.started, f)
	big := n > packChunks

	var reuse map[uint64]journalPack
	f.key = format.NewContentKey()
	if big && u.c.cfg.StateDir != "" {
		if reuse, err = u.openJournal(fh, f); err != nil {
			return err
		}
	}
	if big {
		// Small files get their cipher when their pack is sealed (sendPack): a pack of tiny files
		// holds up to ~250,000 of them, and a GCM instance each (~600 bytes) was most of the
		// memory of a 100,000-file put.
		f.ciph = f.key.Cipher()
	}

	h := sha256.New()
	if !big && n > 0 {
		need := int(size) + 16*int(n)
		if u.cur == nil || u.cur.big != nil || u.cur.n+need > len(u.cur.buf) {
			if err := u.flush(); err != nil {
				return err
			}
			u.smallLeft = max(u.smallLeft, need) // the file grew since the plan
			if err := u.newPack(nil); err != nil {
				return err
			}
		}
		u.smallLeft = max(u.smallLeft-need, 0)
	}
	changed := func() error {
		return fmt.Errorf("client: upload %s: the file changed while it was read: %w", f.local, coffer.ErrConflict)
	}
	for i := uint64(0); i < n; i++ {
		if p, ok := reuse[i]; ok {
			if u.cur != nil && u.cur.big == f {
				if err := u.flush(); err != nil {
					return err
				}
			}
			if err := u.reusePack(fh, f, h, p); err != nil {
				return err
			}
			i += p.count - 1
			continue
		}
		plen := int(format.ChunkPlainLen(size, cs, i))
		if big && (u.cur == nil || u.cur.big != f || len(u.cur.entries) == packChunks) {
			if err := u.flush(); err != nil {
				return err
			}
			if err := u.newPack(f); err != nil {
				return err
			}
		}
		p := u.cur
		buf := p.buf[p.n : p.n+plen]
		if _, err := io.ReadFull(src, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return changed()
			}
			return fmt.Errorf("client: upload: %w", err)
		}
		h.Write(buf)
		if len(p.files) == 0 || p.files[len(p.files)-1] != f {
			p.files = append(p.files, f)
			f.mu.Lock()
			f.pending++
			f.mu.Unlock()
		}
		p.entries = append(p.entries, packEntry{f: f, idx: i, off: p.n, plen: plen})
		p.n += plen + 16
	}
	if f.pre != nil {
		if f.pre.changed {
			return changed()
		}
		f.pre = nil
	} else if fi2, err := fh.Stat(); err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return changed()
	}
	f.hash = [32]byte(h.Sum(nil))
	if big {
		if err := u.flush(); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.readDone = true
	complete := f.pending == 0 && !f.sent
	f.sent = f.sent || complete
	f.mu.Unlock()
	if complete {
		return u.deliver(f)
	}
	return nil
}

func (u *uploader) deliver(f *upFile) error {
	select {
	case u.done <- f:
		return nil
	case <-u.ctx.Done():
		return u.err()
	}
}

// openJournal resumes or starts the journal of a big file. It sets f.key and returns the packs
// that may be reused.
func (u *uploader) openJournal(fh *os.File, f *upFile) (map[uint64]journalPack, error) {
	abs, err := filepath.Abs(f.local)
	if err != nil {
		return nil, fmt.Errorf("client: upload: %w", err)
	}
	jp := journalPath(u.c.cfg.StateDir, u.c.account, abs, f.remote)
	hdr := journalHeader{Local: f.local, Remote: f.remote, Size: f.size, MTime: f.mtime, ChunkSize: format.DefaultChunkSize}
	j, err := loadJournal(jp)
	if err != nil {
		u.c.log.Warn("client: upload: unreadable journal, starting over", "err", err)
		j = nil
	}
	if j != nil && j.hdr.Size == f.size && j.hdr.MTime == f.mtime && j.hdr.ChunkSize == format.DefaultChunkSize {
		key, ok := j.key()
		same := false
		if ok {
			if same, err = verifyJournal(fh, j, key.Cipher(), uint64(f.size)); err != nil {
				return nil, err
			}
		}
		if _, err := fh.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("client: upload: %w", err)
		}
		if same {
			reuse := j.reusable(uint64(f.size))
			present, err := u.c.presentBlobs(u.ctx, reuse)
			if err != nil {
				return nil, err
			}
			for first, p := range reuse {
				if !present[p.blob] {
					delete(reuse, first)
				}
			}
			if err := j.open(); err != nil {
				return nil, err
			}
			f.key, f.journal = key, j
			return reuse, nil
		}
	}
	hdr.Key = fmt.Sprintf("%x", f.key[:])
	if f.journal, err = createJournal(jp, hdr); err != nil {
		return nil, err
	}
	return nil, nil
}

// presentBlobs asks the server which of the packs' blobs it still stores.
func (c *Client) presentBlobs(ctx context.Context, packs map[uint64]journalPack) (map[coffer.BlobID]bool, error) {
	out := map[coffer.BlobID]bool{}
	if len(packs) == 0 {
		return out, nil
	}
	req := api.BlobsRequest{}
	for _, p := range packs {
		req.Blobs = append(req.Blobs, p.blob)
	}
	var resp api.BlobsResponse
	if err := c.http.json(ctx, "POST", c.blobCheckPath(), &req, &resp, true, false); err != nil {
		return nil, fmt.Errorf("client: upload: check blobs: %w", err)
	}
	for _, b := range resp.Present {
		out[b] = true
	}
	return out, nil
}

// reusePack re-reads the chunks of an already stored pack, checks them against the journal (sealed
// again, each must give its journaled tag) and takes over its chunk references.
func (u *uploader) reusePack(fh *os.File, f *upFile, h io.Writer, p journalPack) error {
	const cs = format.DefaultChunkSize
	if u.scratch == nil {
		u.scratch = make([]byte, cs+16)
	}
	n := uint64(len(f.chunks))
	var off uint64
	for i := p.first; i < p.first+p.count; i++ {
		plen := format.ChunkPlainLen(uint64(f.size), cs, i)
		buf := u.scratch[:plen]
		if _, err := io.ReadFull(fh, buf); err != nil {
			return fmt.Errorf("client: upload %s: the file changed while it was read: %w", f.local, coffer.ErrConflict)
		}
		h.Write(buf)
		if chunkTag(f.ciph, u.scratch, int(plen), i, i == n-1) != f.journal.tags[i] {
			return fmt.Errorf("client: upload %s: the file changed during the upload (chunk %d): %w", f.local, i, coffer.ErrConflict)
		}
		f.chunks[i] = format.ChunkRef{Blob: p.blob, Offset: off, Length: plen + 16}
		off += uint64(plen) + 16
		f.tracker.Add(int64(plen))
	}
	return nil
}

// sendPack seals a pack's chunks in place, journals their tags (big files), uploads it and records
// the chunk references.
func (u *uploader) sendPack(p *upPack) error {
	defer u.release(p)
	var (
		ciph *format.ContentCipher
		of   *upFile
	)
	for _, e := range p.entries {
		switch {
		case e.f.ciph != nil: // a big file's
			ciph = e.f.ciph
		case e.f != of: // a small file's chunks are consecutive in one pack
			ciph = e.f.key.Cipher()
		}
		of = e.f
		last := e.idx == uint64(len(e.f.chunks))-1
		ciph.Seal(p.buf[e.off:e.off], p.buf[e.off:e.off+e.plen], e.idx, last)
	}
	if j := p.big; j != nil && j.journal != nil {
		idx := make([]uint64, len(p.entries))
		tags := make([][16]byte, len(p.entries))
		for k, e := range p.entries {
			idx[k] = e.idx
			tags[k] = [16]byte(p.buf[e.off+e.plen : e.off+e.plen+16])
		}
		if err := j.journal.recordTags(idx, tags); err != nil {
			return err
		}
	}
	lengths := make([]uint32, len(p.entries))
	for k, e := range p.entries {
		lengths[k] = uint32(e.plen + 16)
	}
	blob, err := u.c.putBlob(u.ctx, p.buf[:p.n], lengths)
	if err != nil {
		return err
	}
	added := map[*upFile]int64{}
	for _, e := range p.entries {
		e.f.chunks[e.idx] = format.ChunkRef{Blob: blob, Offset: uint64(e.off), Length: uint32(e.plen + 16)}
		added[e.f] += int64(e.plen)
	}
	if p.big != nil && p.big.journal != nil {
		if err := p.big.journal.recordPack(journalPack{first: p.entries[0].idx, count: uint64(len(p.entries)), blob: blob}); err != nil {
			return err
		}
	}
	for _, f := range p.files {
		f.tracker.Add(added[f])
		f.mu.Lock()
		f.pending--
		complete := f.pending == 0 && f.readDone && !f.sent
		f.sent = f.sent || complete
		f.mu.Unlock()
		if complete {
			if err := u.deliver(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// putBlob uploads one blob (retried on network errors: a blob upload is idempotent) under its
// name (format.BlobName of the blob's chunks, whose lengths are given in order), with the CRC-32C
// the server checks the body against. It checks that the server acknowledges that very blob and
// size: a record must never name bytes the server did not store. A mismatch is an error wrapping
// coffer.ErrCorrupt.
func (c *Client) putBlob(ctx context.Context, b []byte, lengths []uint32) (coffer.BlobID, error) {
	return putBlobAt(ctx, c.http, "/v1/trees/"+c.tree.String()+"/blobs/", b, lengths)
}

// putBlobAt uploads b with PUT prefix+name (the blob upload of PROTOCOL.md §4) and checks the
// acknowledgement; see putBlob.
func putBlobAt(ctx context.Context, t *transport, prefix string, b []byte, lengths []uint32) (coffer.BlobID, error) {
	want, err := format.BlobName(b, lengths)
	if err != nil {
		return coffer.BlobID{}, fmt.Errorf("client: upload blob: %w", err)
	}
	resp, err := t.do(ctx, call{method: "PUT", path: prefix + want.String(), body: b, ctype: "application/octet-stream",
		header: http.Header{api.HeaderCRC32C: {api.FormatCRC32C(crc32.Checksum(b, crc32c))}}, retry: true})
	if err != nil {
		return coffer.BlobID{}, fmt.Errorf("client: upload blob %s: %w", want, err)
	}
	defer resp.Body.Close()
	var out api.BlobPutResponse
	if err := decodeJSONBody(resp, &out); err != nil {
		return coffer.BlobID{}, fmt.Errorf("client: upload blob %s: %w", want, err)
	}
	if out.Size != int64(len(b)) {
		return coffer.BlobID{}, fmt.Errorf("client: upload blob %s: the server acknowledged %d of %d bytes: %w", want, out.Size, len(b), coffer.ErrCorrupt)
	}
	if out.Blob != want {
		return coffer.BlobID{}, fmt.Errorf("client: upload blob %s: the server acknowledged it as blob %s, not the name it was sent under: %w", want, out.Blob, coffer.ErrCorrupt)
	}
	return out.Blob, nil
}

// crc32c is the CRC-32C (Castagnoli) table of the blob upload checksum (api.HeaderCRC32C).
var crc32c = crc32.MakeTable(crc32.Castagnoli)

// commitLoop commits finished files in batches until the workers are done.
func (u *uploader) commitLoop() error {
	var batch []*upFile
	chunks := 0 // chunk references in batch: bounds the commit's size
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case f, ok := <-u.done:
			if !ok {
				if err := u.err(); err != nil {
					return err
				}
				return u.commitBatch(batch)
			}
			// Every chunk is sealed: drop the AES-GCM state (about 1 KiB a file, which adds up
			// over 10,000 files waiting for their commit).
			f.ciph = nil
			if len(batch) == 0 {
				timer.Reset(u.c.batchEvery)
			}
			batch, chunks = append(batch, f), chunks+len(f.chunks)
			if len(batch) >= u.c.batchFiles || chunks >= u.c.batchChunks {
				timer.Stop()
				if err := u.commitBatch(batch); err != nil {
					return err
				}
				batch, chunks = nil, 0
			}
		case <-timer.C:
			if len(batch) > 0 {
				if err := u.commitBatch(batch); err != nil {
					return err
				}
				batch, chunks = nil, 0
			}
		case <-u.ctx.Done():
			return u.err()
		}
	}
}

// sealSpec is one file record to seal.
type sealSpec struct {
	id     coffer.NodeID
	parent *node
	prev   *node
	nk     format.NodeKey
	body   *format.Body
}

// commitBatch commits the records of finished files (one commit, rebuilt if the head moves).
func (u *uploader) commitBatch(files []*upFile) error {
	if len(files) == 0 {
		return nil
	}
	ctx := u.ctx
	err := u.c.update(ctx, func(t *txn) error {
		if err := u.c.stageDirs(ctx, t, u.dirs); err != nil {
			return err
		}
		specs := make([]sealSpec, len(files))
		for i, f := range files {
			s := sealSpec{id: f.id, parent: f.dir.n, nk: f.nk}
			if f.dir.n == nil {
				return fmt.Errorf("client: upload: %s: folder missing: %w", f.remote, coffer.ErrNotFound)
			}
			if t.fresh[f.dir.n.id()] {
				specs[i] = u.fileSpec(f, s) // a folder this commit creates has no entries yet
				continue
			}
			fl, err := t.v.list(ctx, u.c, f.dir.n, f.dir.path)
			if err != nil {
				return err
			}
			if ex := fl.byName[f.name]; ex != nil {
				if ex.isDir() || !u.opts.Overwrite {
					return fmt.Errorf("client: upload: %s: %w", f.remote, coffer.ErrExist)
				}
				s.id, s.prev, s.nk = ex.id(), ex, ex.key
			}
			specs[i] = u.fileSpec(f, s)
		}
		staged, err := u.c.sealAll(specs)
		if err != nil {
			return err
		}
		for _, s := range staged {
			if err := t.add(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	u.dirs = nil // created: later batches find them in the view
	u.mu.Lock()
	for _, f := range files {
		u.files++
		u.bytes += f.size
	}
	u.mu.Unlock()
	for _, f := range files {
		f.chunks = nil // committed: the plan keeps the file, not its chunk list
		f.tracker.Done(nil)
		f.tracker = nopTracker{}
		if f.journal != nil {
			f.journal.close(true)
			f.journal = nil
		}
	}
	return nil
}

// fileSpec completes s with f's record body.
func (u *uploader) fileSpec(f *upFile, s sealSpec) sealSpec {
	s.body = &format.Body{Name: f.name, MTime: f.mtime, Mode: f.mode, Content: &format.Content{
		Key: f.key, Commitment: f.key.Commitment(), Size: uint64(f.size), ChunkSize: format.DefaultChunkSize,
		Hash: f.hash, Chunks: f.chunks}}
	return s
}

// sealAll seals file records on every core.
func (c *Client) sealAll(specs []sealSpec) ([]*staged, error) {
	out := make([]*staged, len(specs))
	errs := make([]error, len(specs))
	workers := min(runtime.GOMAXPROCS(0), len(specs)/64+1)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(specs); i += workers {
				s := specs[i]
				out[i], errs[i] = c.seal(format.KindFile, s.id, s.parent, s.prev, s.nk, s.body)
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
