package client

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"coffer"
	"coffer/format"
	"coffer/internal/directio"
)

// Downloads write ".<name>.coffer-partial" beside the target and journal big files' progress in
// ".<name>.coffer-partial.json" every journalEvery chunks, so a re-run resumes from the verified
// prefix. Small finished files are made durable in groups of up to syncGroup (one filesystem
// sync for every file that finished while the previous sync ran); once all are renamed into
// place, one more sync of their folders makes the renames durable before the download returns.
const (
	partialSuffix = ".coffer-partial"
	journalEvery  = 32
	syncGroup     = 4096
)

// dlFile is one remote file being written locally.
type dlFile struct {
	remote string
	local  string
	n      *node
	ct     *format.Content
	ciph   *format.ContentCipher
	start  uint64 // first chunk to fetch (resumed downloads)

	partial string
	// oneUnit: every chunk arrives in one unit, so a writer goroutine can write the whole file.
	oneUnit   bool
	firstUnit int
	parts     [][]byte // point into unit's buffer, held until the writer is done
	unit      *dlUnit
	tokens    int // writer-queue budget held (see downloader.budget)
	// journaled: a partial-download journal may exist beside the file (remove it when done).
	journaled bool

	fh      *os.File
	w       *directio.Writer // big files: writes fh past the page cache where possible
	syncing chan struct{}    // closed when the background checkpoint (sync + journal) is done
	syncErr error            // its result, read after syncing is closed
	h       hash.Hash
	next    uint64
	written uint64
	tracker Tracker
}

// partialJournal is the resume record of a partial download.
type partialJournal struct {
	Node    coffer.NodeID `json:"node"`
	Version uint64        `json:"version"`
	Hash    string        `json:"hash"` // hex plaintext SHA-256 of the complete file
	Chunks  uint64        `json:"chunks"`
}

func (f *dlFile) journalPath() string { return f.partial + ".json" }

// dlPlan is what a download will do.
type dlPlan struct {
	dirs    []string
	files   []*dlFile
	skipped int
	folders int
	names   map[string]map[string]bool // folder (with separator) → entry names; nil: unknown
}

// Download copies remote files and folders to local with cp semantics: if local is an existing
// folder each remote goes inside it, otherwise a single remote is written as local. Every name is
// checked first (safeLocalName: nothing is written if one is unsafe), and every existing local file
// is either identical (same size, mtime and SHA-256: skipped) or an error wrapping coffer.ErrExist
// unless Overwrite. Every byte is verified before it is visible under its final name (temporary
// file, verify every chunk and the whole-file hash, sync, rename). A verification failure is an
// error wrapping coffer.ErrAuth naming the remote path; its temporary file is deleted and the
// destination untouched. An interrupted download resumes from the verified prefix.
func (c *Client) Download(ctx context.Context, remotes []string, local string, opts TransferOptions) (TransferResult, error) {
	if tcs, rels, err := c.routeEach(ctx, remotes); err != nil || tcs != nil {
		if err != nil {
			return TransferResult{}, err
		}
		return downloadEach(ctx, tcs, rels, local, opts)
	}
	if mounts, err := c.mountsBelow(ctx, remotes, local); err != nil || len(mounts) > 0 {
		if err != nil {
			return TransferResult{}, err
		}
		return c.downloadWithMounts(ctx, remotes, local, opts, mounts)
	}
	var plan *dlPlan
	err := c.withView(ctx, func(v *view) error {
		var err error
		plan, err = c.planDownload(ctx, v, remotes, local, opts)
		return err
	})
	if err != nil {
		return TransferResult{}, err
	}
	res := TransferResult{Folders: plan.folders, Skipped: plan.skipped}
	for _, d := range plan.dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return res, fmt.Errorf("client: download: %w", err)
		}
	}
	d := &downloader{c: c, opts: opts}
	err = d.run(ctx, plan.files)
	res.Files, res.Bytes = d.files, d.bytes
	return res, err
}

// planDownload resolves the remotes and checks every name and every local destination.
func (c *Client) planDownload(ctx context.Context, v *view, remotes []string, local string, opts TransferOptions) (*dlPlan, error) {
	if len(remotes) == 0 {
		return nil, fmt.Errorf("client: download: no remote sources: %w", coffer.ErrInvalid)
	}
	into := false
	if st, err := os.Stat(local); err == nil && st.IsDir() {
		into = true
	} else if len(remotes) > 1 {
		return nil, fmt.Errorf("client: download: %s is not a folder: %w", local, coffer.ErrNotFound)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("client: download: %w", err)
	} else if st, err := os.Stat(filepath.Dir(local)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("client: download: folder %s does not exist: %w", filepath.Dir(local), coffer.ErrNotFound)
	}
	plan := &dlPlan{}
	// On case-insensitive file systems two remote names may land on one local file.
	folded := map[string]string{}
	foldCase := runtime.GOOS == "darwin" || runtime.GOOS == "windows"
	for _, r := range remotes {
		loc, err := v.resolve(ctx, c, r)
		if err != nil {
			return nil, err
		}
		target := local
		if into && loc.node != v.root {
			if err := safeLocalName(loc.node.body.Name); err != nil {
				return nil, fmt.Errorf("client: download %s: %w", loc.path, err)
			}
			target = filepath.Join(local, loc.node.body.Name)
		}
		all, err := v.collect(ctx, c, loc)
		if err != nil {
			return nil, err
		}
		for _, w := range all {
			lp, err := safeLocalJoin(target, w.rel)
			if err != nil {
				return nil, fmt.Errorf("client: download %s: %w", w.e.Path, err)
			}
			if foldCase {
				k := strings.ToLower(lp)
				if other, dup := folded[k]; dup {
					return nil, fmt.Errorf("client: download %s and %s would be one local file on this system: %w", other, w.e.Path, coffer.ErrExist)
				}
				folded[k] = w.e.Path
			}
			if err := c.planLocal(plan, w, lp, opts); err != nil {
				return nil, err
			}
		}
	}
	return plan, nil
}

// planLocal checks one destination and adds it to the plan.
func (c *Client) planLocal(plan *dlPlan, w walked, lp string, opts TransferOptions) error {
	var st os.FileInfo
	err := fs.ErrNotExist
	if plan.mayExist(lp) {
		st, err = os.Lstat(lp)
	}
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("client: download: %w", err)
	}
	if w.n.isDir() {
		plan.folders++
		if exists && !st.IsDir() {
			return fmt.Errorf("client: download %s: %s exists and is not a folder: %w", w.e.Path, lp, coffer.ErrExist)
		}
		if !exists {
			plan.dirs = append(plan.dirs, lp)
		}
		return nil
	}
	ct := w.n.body.Content
	if exists {
		if st.IsDir() {
			return fmt.Errorf("client: download %s: %s exists and is a folder: %w", w.e.Path, lp, coffer.ErrExist)
		}
		if st.Mode().IsRegular() && uint64(st.Size()) == ct.Size && st.ModTime().UnixNano() == w.n.body.MTime {
			same, err := fileHashIs(lp, ct.Hash)
			if err != nil {
				return err
			}
			if same {
				plan.skipped++
				return nil
			}
		}
		if !opts.Overwrite {
			return fmt.Errorf("client: download %s: %s: %w", w.e.Path, lp, coffer.ErrExist)
		}
	}
	name := filepath.Base(lp)
	f := &dlFile{remote: w.e.Path, local: lp, n: w.n, ct: ct, ciph: ct.Key.Cipher(),
		partial: filepath.Join(filepath.Dir(lp), "."+name+partialSuffix)}
	if plan.mayExist(f.journalPath()) {
		f.start = f.resumable()
	}
	plan.files = append(plan.files, f)
	return nil
}

// mayExist reports whether p may exist, from one listing per folder (a folder the download
// creates has no entries), so a download of many new files costs no failed lookup per file.
func (plan *dlPlan) mayExist(p string) bool {
	dir, name := filepath.Split(p)
	if plan.names == nil {
		plan.names = map[string]map[string]bool{}
	}
	names, ok := plan.names[dir]
	if !ok {
		ents, err := os.ReadDir(filepath.Join(dir, "."))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			names = nil // unknown: look every name up
		} else {
			names = make(map[string]bool, len(ents))
			for _, e := range ents {
				names[e.Name()] = true
			}
		}
		plan.names[dir] = names
	}
	return names == nil || names[name]
}

// resumable returns the verified chunk count of a matching partial download, or 0.
func (f *dlFile) resumable() uint64 {
	b, err := os.ReadFile(f.journalPath())
	if err != nil {
		return 0
	}
	f.journaled = true
	var j partialJournal
	if json.Unmarshal(b, &j) != nil || j.Node != f.n.id() || j.Version != f.n.rec.Version ||
		j.Hash != fmt.Sprintf("%x", f.ct.Hash) || j.Chunks > uint64(len(f.ct.Chunks)) {
		return 0
	}
	st, err := os.Stat(f.partial)
	if err != nil || uint64(st.Size()) < j.Chunks*uint64(f.ct.ChunkSize) {
		return 0
	}
	return j.Chunks
}

// downloader is the in-order sink of a download. Files whose chunks arrive in one unit (small
// files) are written by smallWriters goroutines; others are written in order by the sink.
type downloader struct {
	c      *Client
	opts   TransferOptions
	active map[*dlFile]bool // partial files open in the sink
	// placeQ carries closed, verified small files to the placer, which makes every file waiting
	// durable with one filesystem sync and renames them (group commit: the slower the sync,
	// the larger the group).
	placeQ chan *dlFile

	jobs chan *dlFile
	// wpool holds the write buffers of big files (2 per file being written), spool those of
	// small files written directly (1 per writer, 2 for files larger than smallWriteBuf).
	wpool, spool *directio.Pool
	// budget bounds the bytes of small files queued for the writers (one token per 64 KiB),
	// so queued files cannot pin more than writerBudget bytes of range buffers.
	budget chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	files  int
	bytes  int64
	dirs   map[string]bool // folders files were renamed into (synced at the end)
	werr   error
	failed atomic.Bool
}

const (
	smallWriters = 4
	writerBudget = 16 << 20
	budgetToken  = 64 << 10
	// bigWriteBuf is the size of a big file's write buffers: large direct writes, one in flight.
	bigWriteBuf = 4 << 20
	// smallWriteBuf is the size of a small file's write buffers: a file of one default chunk
	// is written with one direct write.
	smallWriteBuf = 2 << 20
	// directMin is the smallest small file written directly (see writeSmall).
	directMin = 64 << 10
)

// writer writes whole small files and hands them to the placer.
func (d *downloader) writer() {
	defer d.wg.Done()
	for f := range d.jobs {
		var err error
		if !d.failed.Load() {
			err = d.writeSmall(f)
		}
		f.parts = nil
		f.unit.release()
		f.unit = nil
		for ; f.tokens > 0; f.tokens-- {
			<-d.budget
		}
		if d.failed.Load() {
			continue
		}
		if err != nil {
			d.setErr(err)
			continue
		}
		d.placeQ <- f
	}
}

// placer syncs and renames the small files of placeQ in groups until it is closed. Files already
// verified are placed even after another part of the download failed.
func (d *downloader) placer(done chan<- struct{}) {
	defer close(done)
	for f := range d.placeQ {
		group := []*dlFile{f}
	more:
		for len(group) < syncGroup {
			select {
			case g, ok := <-d.placeQ:
				if !ok {
					break more
				}
				group = append(group, g)
			default:
				break more
			}
		}
		if err := d.placeAll(group); err != nil {
			d.setErr(err)
		}
	}
}

func (d *downloader) writerErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.werr
}

func (d *downloader) setErr(err error) {
	d.mu.Lock()
	if d.werr == nil {
		d.werr = err
	}
	d.mu.Unlock()
	d.failed.Store(true)
}

// writeSmall verifies one small file's chunks against its whole-file hash, then writes and
// closes its partial file (placed later in a group). Nothing is written for a file that fails.
// Files of at least directMin bytes are written past the page cache where the file system
// allows it: on virtual machines, copying into fresh page-cache pages costs more CPU than
// decrypting and hashing the same bytes. Each direct write waits for the device, which costs
// more than the copy for small files (measured, 2 vCPUs, ext4: direct writes of 4 and 16 KiB
// files cost twice the CPU, 32 KiB about the same, 64 KiB 25% less, 1 MiB half).
func (d *downloader) writeSmall(f *dlFile) error {
	f.tracker = startTracker(d.opts.Progress, f.remote, int64(f.ct.Size))
	f.removeJournal()
	f.h = sha256.New()
	for _, p := range f.parts {
		f.h.Write(p)
		f.written += uint64(len(p))
	}
	f.next = uint64(len(f.ct.Chunks))
	if f.written != f.ct.Size || [32]byte(f.h.Sum(nil)) != f.ct.Hash {
		err := fmt.Errorf("client: download %s: content does not match its hash: %w", f.remote, coffer.ErrAuth)
		f.tracker.Done(err)
		return err
	}
	fail := func(err error) error {
		if f.w != nil {
			f.w.Close()
			f.w = nil
		}
		if f.fh != nil {
			f.fh.Close()
			os.Remove(f.partial)
		}
		f.tracker.Done(err)
		return err
	}
	const flags = os.O_RDWR | os.O_CREATE | os.O_TRUNC
	var err error
	if f.ct.Size >= directMin {
		if f.fh, err = directio.OpenFile(f.partial, flags, 0o600); err == nil {
			f.w = directio.NewWriter(f.fh, d.spool)
		}
	} else {
		f.fh, err = os.OpenFile(f.partial, flags, 0o600)
	}
	if err != nil {
		return fail(fmt.Errorf("client: download: %w", err))
	}
	for _, p := range f.parts {
		if f.w != nil {
			_, err = f.w.Write(p)
		} else {
			_, err = f.fh.Write(p)
		}
		if err != nil {
			return fail(fmt.Errorf("client: download: %w", err))
		}
		f.tracker.Add(int64(len(p)))
	}
	f.parts = nil
	if err := d.closeVerified(f); err != nil {
		return fail(err)
	}
	return nil
}

// placeAll syncs a group of closed, verified partial files and renames them into place.
func (d *downloader) placeAll(fs []*dlFile) error {
	if len(fs) == 0 {
		return nil
	}
	paths := make([]string, len(fs))
	for i, f := range fs {
		paths[i] = f.partial
	}
	if err := syncFiles(paths); err != nil {
		for _, f := range fs {
			os.Remove(f.partial)
		}
		return fmt.Errorf("client: download: sync: %w", err)
	}
	for i, f := range fs {
		if err := d.place(f); err != nil {
			for _, g := range fs[i:] {
				os.Remove(g.partial)
			}
			return err
		}
	}
	return nil
}

func (d *downloader) run(ctx context.Context, files []*dlFile) error {
	var b unitBuilder
	for _, f := range files {
		for i := f.start; i < uint64(len(f.ct.Chunks)); i++ {
			b.chunk(f, i, f.ct.Chunks[i])
		}
		b.finish(f)
	}
	d.jobs = make(chan *dlFile, 64)
	d.wpool = directio.NewPool(bigWriteBuf)
	d.spool = directio.NewPool(smallWriteBuf)
	d.budget = make(chan struct{}, writerBudget/budgetToken)
	d.placeQ = make(chan *dlFile, syncGroup)
	placed := make(chan struct{})
	go d.placer(placed)
	for i := 0; i < smallWriters; i++ {
		d.wg.Add(1)
		go d.writer()
	}
	err := d.c.fetchUnits(ctx, b.units, d.sink)
	close(d.jobs)
	d.wg.Wait()
	if err != nil {
		d.abort(err)
	}
	// Files already verified are still made durable and moved into place.
	close(d.placeQ)
	<-placed
	serr := d.syncPlaced()
	if err == nil {
		err = d.writerErr()
	}
	if err == nil {
		err = serr
	}
	return err
}

// abort leaves the files in progress resumable, unless verification failed (then they are
// deleted).
func (d *downloader) abort(err error) {
	for f := range d.active {
		d.abortFile(f, err)
	}
	d.active = nil
}

func (d *downloader) abortFile(f *dlFile, err error) {
	_ = f.waitSync()
	werr := f.flushWriter() // waits for a write in flight before the file is closed
	f.tracker.Done(err)
	if errors.Is(err, coffer.ErrAuth) || len(f.ct.Chunks) <= packChunks {
		f.fh.Close()
		os.Remove(f.partial)
		f.removeJournal()
		return
	}
	if werr == nil && f.fh.Sync() == nil {
		f.journaled = true
		_ = f.writeJournal(f.next)
	}
	f.fh.Close()
}

// flushWriter writes the bytes buffered for f (big files), turns direct writes off and releases
// the buffers.
func (f *dlFile) flushWriter() error {
	if f.w == nil {
		return nil
	}
	err := f.w.Close()
	f.w = nil
	if err != nil {
		return fmt.Errorf("client: download: %w", err)
	}
	return nil
}

func (f *dlFile) removeJournal() {
	if f.journaled {
		os.Remove(f.journalPath())
		f.journaled = false
	}
}

// writeJournal records that the first n chunks of the partial file are durable (the caller
// sets f.journaled first).
func (f *dlFile) writeJournal(n uint64) error {
	b, _ := json.Marshal(partialJournal{Node: f.n.id(), Version: f.n.rec.Version, Hash: fmt.Sprintf("%x", f.ct.Hash), Chunks: n})
	return writeFileAtomic(f.journalPath(), b, 0o600)
}

// checkpoint makes the first f.next chunks durable and journals them in the background, so the
// sink keeps writing while the disk flushes. A checkpoint still running is not waited for (the
// next one covers more); its error is returned by a later checkpoint or waitSync.
func (f *dlFile) checkpoint() error {
	if f.syncing != nil {
		select {
		case <-f.syncing:
		default:
			return nil
		}
		if err := f.waitSync(); err != nil {
			return err
		}
	}
	if f.w != nil {
		if err := f.w.Flush(); err != nil { // the first f.next chunks are in the file
			return fmt.Errorf("client: download: %w", err)
		}
	}
	n, ch := f.next, make(chan struct{})
	f.journaled, f.syncing = true, ch
	go func() {
		defer close(ch)
		if err := f.fh.Sync(); err != nil {
			f.syncErr = fmt.Errorf("client: download: %w", err)
			return
		}
		f.syncErr = f.writeJournal(n)
	}()
	return nil
}

// waitSync waits for the background checkpoint, if any, and returns its error.
func (f *dlFile) waitSync() error {
	if f.syncing == nil {
		return nil
	}
	<-f.syncing
	f.syncing = nil
	err := f.syncErr
	f.syncErr = nil
	return err
}

// open starts (or resumes) the partial file of f.
func (d *downloader) open(f *dlFile) error {
	if d.active == nil {
		d.active = map[*dlFile]bool{}
	}
	d.active[f] = true
	f.h = sha256.New()
	f.tracker = startTracker(d.opts.Progress, f.remote, int64(f.ct.Size))
	if f.start > 0 {
		fh, err := os.OpenFile(f.partial, os.O_RDWR, 0o600)
		if err == nil {
			prefix := int64(f.start) * int64(f.ct.ChunkSize)
			if _, err = io.CopyN(f.h, fh, prefix); err == nil {
				if err = fh.Truncate(prefix); err == nil {
					_, err = fh.Seek(prefix, io.SeekStart)
				}
			}
			if err == nil {
				f.fh, f.next, f.written = fh, f.start, uint64(prefix)
				f.w = directio.NewWriter(fh, d.wpool)
				f.tracker.Add(prefix)
				return nil
			}
			fh.Close()
		}
		delete(d.active, f)
		f.removeJournal()
		return fmt.Errorf("client: download %s: cannot resume (run again to start over): %w", f.remote, err)
	}
	f.removeJournal()
	fh, err := os.OpenFile(f.partial, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		delete(d.active, f)
		return fmt.Errorf("client: download: %w", err)
	}
	f.fh = fh
	f.w = directio.NewWriter(fh, d.wpool)
	return nil
}

// sink writes a unit's verified chunks in order and finishes completed files. Whole small files
// go to the writer goroutines; the others are written here while a goroutine hashes the same
// chunks (both in order), then finished.
func (d *downloader) sink(u *dlUnit) error {
	var seq []*dlItem
	for i := range u.items {
		it := &u.items[i]
		f := it.f
		if f.oneUnit {
			if !it.finish {
				f.parts = append(f.parts, it.plain)
				continue
			}
			if d.failed.Load() {
				return d.writerErr()
			}
			f.tokens = min(max(1, int((f.ct.Size+budgetToken-1)/budgetToken)), cap(d.budget))
			for range f.tokens {
				d.budget <- struct{}{}
			}
			u.refs.Add(1)
			f.unit = u
			d.jobs <- f
			continue
		}
		if f.fh == nil {
			if err := d.open(f); err != nil {
				return err
			}
		}
		seq = append(seq, it)
	}
	if len(seq) == 0 {
		return nil
	}
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for _, it := range seq {
			if !it.finish {
				it.f.h.Write(it.plain)
			}
		}
	}()
	err := d.writeSeq(seq)
	<-hashed
	if err != nil {
		return err
	}
	for _, it := range seq {
		if it.finish {
			if err := d.finish(it.f); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeSeq writes chunks to their open partial files and journals big files' progress.
func (d *downloader) writeSeq(seq []*dlItem) error {
	for _, it := range seq {
		if it.finish {
			continue
		}
		f := it.f
		if it.idx != f.next {
			return fmt.Errorf("client: download %s: chunk %d out of order: %w", f.remote, it.idx, coffer.ErrInvalid)
		}
		if _, err := f.w.Write(it.plain); err != nil {
			return fmt.Errorf("client: download: %w", err)
		}
		f.next++
		f.written += uint64(len(it.plain))
		f.tracker.Add(int64(len(it.plain)))
		if len(f.ct.Chunks) > packChunks && f.next%journalEvery == 0 {
			if err := f.checkpoint(); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish verifies a complete file and moves it into place (small files: in groups).
func (d *downloader) finish(f *dlFile) error {
	if err := d.closeVerified(f); err != nil {
		return err
	}
	delete(d.active, f)
	if len(f.ct.Chunks) <= packChunks {
		d.placeQ <- f
		return nil
	}
	return d.place(f)
}

// closeVerified checks the whole-file hash and size, sets the mode, syncs big files, closes the
// partial file and sets its mtime.
func (d *downloader) closeVerified(f *dlFile) error {
	if err := f.waitSync(); err != nil {
		return err
	}
	if err := f.flushWriter(); err != nil {
		return err
	}
	if f.written != f.ct.Size || [32]byte(f.h.Sum(nil)) != f.ct.Hash {
		return fmt.Errorf("client: download %s: content does not match its hash: %w", f.remote, coffer.ErrAuth)
	}
	mode := os.FileMode(f.n.body.Mode & 0o777)
	if mode == 0 {
		mode = 0o644
	}
	if err := f.fh.Chmod(mode); err != nil {
		return fmt.Errorf("client: download: %w", err)
	}
	big := len(f.ct.Chunks) > packChunks
	if big {
		if err := f.fh.Sync(); err != nil {
			return fmt.Errorf("client: download: %w", err)
		}
	}
	if err := f.fh.Close(); err != nil {
		return fmt.Errorf("client: download: %w", err)
	}
	mt := time.Unix(0, f.n.body.MTime)
	if err := os.Chtimes(f.partial, mt, mt); err != nil {
		return fmt.Errorf("client: download: %w", err)
	}
	return nil
}

// place renames a verified, synced partial file over its destination.
func (d *downloader) place(f *dlFile) error {
	if err := os.Rename(f.partial, f.local); err != nil {
		return fmt.Errorf("client: download: %w", err)
	}
	f.removeJournal()
	f.tracker.Done(nil)
	d.mu.Lock()
	d.files++
	d.bytes += int64(f.ct.Size)
	if d.dirs == nil {
		d.dirs = map[string]bool{}
	}
	d.dirs[filepath.Dir(f.local)] = true
	d.mu.Unlock()
	return nil
}

// syncPlaced makes the renames of the files placed so far durable.
func (d *downloader) syncPlaced() error {
	d.mu.Lock()
	dirs := make([]string, 0, len(d.dirs))
	for dir := range d.dirs {
		dirs = append(dirs, dir)
	}
	d.dirs = nil
	d.mu.Unlock()
	if err := syncDirs(dirs); err != nil {
		return fmt.Errorf("client: download: sync: %w", err)
	}
	return nil
}

// Cat writes a remote file's verified plaintext to w. If verification fails midway, an error is
// returned after at most the verified chunks were written.
func (c *Client) Cat(ctx context.Context, p string, w io.Writer) error {
	if tc, rel, err := c.route(ctx, p, false); err != nil || tc != c {
		if err != nil {
			return err
		}
		return tc.Cat(ctx, rel, w)
	}
	var n *node
	var remote string
	err := c.withView(ctx, func(v *view) error {
		loc, err := v.resolve(ctx, c, p)
		if err != nil {
			return err
		}
		if loc.node.isDir() {
			return fmt.Errorf("client: cat %s: is a folder: %w", loc.path, coffer.ErrInvalid)
		}
		n, remote = loc.node, loc.path
		return nil
	})
	if err != nil {
		return err
	}
	ct := n.body.Content
	f := &dlFile{remote: remote, n: n, ct: ct, ciph: ct.Key.Cipher(), h: sha256.New()}
	var b unitBuilder
	for i, ch := range ct.Chunks {
		b.chunk(f, uint64(i), ch)
	}
	b.finish(f)
	return c.fetchUnits(ctx, b.units, func(u *dlUnit) error {
		for _, it := range u.items {
			if it.finish {
				if f.written != ct.Size || [32]byte(f.h.Sum(nil)) != ct.Hash {
					return fmt.Errorf("client: cat %s: content does not match its hash: %w", remote, coffer.ErrAuth)
				}
				continue
			}
			f.h.Write(it.plain)
			f.written += uint64(len(it.plain))
			if _, err := w.Write(it.plain); err != nil {
				return fmt.Errorf("client: cat %s: %w", remote, err)
			}
		}
		return nil
	})
}
