package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/tree"
)

// Frame limits of a listing.
const (
	maxRecordFrame = 32 << 20 // one record (a huge file's chunk list)
	maxBucketFrame = 64 << 20 // one bucket's folder summaries
	summaryLen     = 16 + 8 + 32
)

// errStale reports that the tree's head moved while an operation was reading it; the operation
// restarts on a fresh view.
var errStale = errors.New("client: the tree changed during the operation")

// staleRetries bounds the restarts of one operation on a moving tree.
const staleRetries = 8

// node is a verified, decrypted live record.
type node struct {
	rec  recHeader // the record's header fields (its bytes are not kept: hash is their hash)
	hash [32]byte
	key  format.NodeKey
	body *format.Body

	wrap atomic.Pointer[format.WrapKey] // childWrap, computed on first use (folders only)
}

// recHeader is the part of a verified record a node keeps. The ciphertext, wrapped key and
// signature are not needed once the record is opened, and dropping them keeps the nodes of a
// 100,000-entry folder small.
type recHeader struct {
	Kind    format.Kind
	Node    coffer.NodeID
	Parent  coffer.NodeID
	Version uint64
	Author  [32]byte
}

func headerOf(r *format.Record) recHeader {
	return recHeader{Kind: r.Kind, Node: r.Node, Parent: r.Parent, Version: r.Version, Author: r.Author}
}

func (n *node) id() coffer.NodeID { return n.rec.Node }
func (n *node) isDir() bool       { return n.rec.Kind == format.KindFolder }

// childWrap is the key wrapping the node keys of this folder's children.
func (n *node) childWrap() format.WrapKey {
	if w := n.wrap.Load(); w != nil {
		return *w
	}
	w := n.key.WrapKey()
	n.wrap.Store(&w)
	return w
}

// folder is the verified listing of one folder at one head. It is immutable once built.
type folder struct {
	id       coffer.NodeID
	wrap     format.WrapKey
	children []*node          // sorted by node ID
	byName   map[string]*node // names are unique except in the trash (first one kept)
	trash    bool
}

func newFolder(id coffer.NodeID, wrap format.WrapKey, children []*node, trash bool) *folder {
	f := &folder{id: id, wrap: wrap, children: children, byName: make(map[string]*node, len(children)), trash: trash}
	for _, n := range children {
		if _, dup := f.byName[n.body.Name]; !dup {
			f.byName[n.body.Name] = n
		}
	}
	return f
}

func (f *folder) entries() []format.Entry {
	out := make([]format.Entry, len(f.children))
	for i, n := range f.children {
		out[i] = format.Entry{Node: n.id(), Hash: n.hash}
	}
	return out
}

// rawListing is a parsed, not yet verified, listing.
type rawListing struct {
	// seen is the last verified head known before the request was sent: the served head must
	// not be older (a response may be older than heads this client verified while it was in
	// flight, e.g. its own concurrent commits).
	seen    *format.Head
	headRaw []byte
	buckets *[256][32]byte
	bucket  []format.FolderSummary
	// The records, parsed as their frames arrive (the frames themselves are not kept: for a
	// folder of 100,000 entries they are tens of MB), with their commitment entries (hash of
	// the frame bytes). recErr is the first record that did not parse.
	recs   []*format.Record
	ents   []format.Entry
	recErr error

	// With an opener, records are checked and decrypted in batches by background workers while
	// the rest of the listing streams in, and only the nodes are kept (recs stays empty): the
	// records of a big folder never all sit in memory at once. The nodes are used only after the
	// listing has verified against the head (verifyRaw).
	open    *listOpener
	light   bool // the opener turns records into entries (see listOpener.light)
	batch   *openBatch
	batches []*openBatch
	nodes   []*node  // opened records, in listing order (with an opener, once fetched)
	entries []*Entry // or, when light, their entries, in listing order
	openErr error    // the first record that failed to open
}

// listOpener is what opening a folder's records needs: the folder, the key wrapping its
// children's keys, and the authors allowed (see openRecord).
type listOpener struct {
	id       coffer.NodeID
	wrap     format.WrapKey
	writer   [32]byte
	authorOK func([32]byte) bool
	sem      chan struct{} // bounds the batches being opened at once

	// light, if positive, is the child count (from the listing's bucket summary, which comes
	// before the records) from which the records are turned into entries under dir right away
	// and no nodes are kept: a big folder's List then holds about half the memory.
	light int
	dir   string
}

func newListOpener(id coffer.NodeID, wrap format.WrapKey, writer [32]byte, authorOK func([32]byte) bool) *listOpener {
	return &listOpener{id: id, wrap: wrap, writer: writer, authorOK: authorOK, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// openBatch is a run of consecutive records opened by one worker.
type openBatch struct {
	recs    []*format.Record
	hashes  [][32]byte
	nodes   []*node
	entries []*Entry
	err     error
	done    chan struct{}
}

const openBatchLen = 512

// addRecord parses one record frame (which the caller reuses afterwards).
func (l *rawListing) addRecord(frame []byte) {
	if l.recErr != nil {
		return
	}
	r, err := format.ParseRecord(frame)
	if err != nil {
		l.recErr = err
		return
	}
	e := format.Entry{Node: r.Node, Hash: sha256.Sum256(frame)}
	l.ents = append(l.ents, e)
	if l.open == nil {
		l.recs = append(l.recs, r)
		return
	}
	if l.batch == nil {
		if len(l.batches) == 0 && l.open.light > 0 {
			for _, sum := range l.bucket {
				if sum.Folder == l.open.id {
					l.light = sum.Count >= uint64(l.open.light)
				}
			}
		}
		l.batch = &openBatch{recs: make([]*format.Record, 0, openBatchLen), hashes: make([][32]byte, 0, openBatchLen)}
	}
	l.batch.recs = append(l.batch.recs, r)
	l.batch.hashes = append(l.batch.hashes, e.Hash)
	if len(l.batch.recs) == openBatchLen {
		l.dispatch()
	}
}

// dispatch hands the current batch to a worker, waiting while all workers are busy (so parsed
// but unopened records stay bounded).
func (l *rawListing) dispatch() {
	b, op, light := l.batch, l.open, l.light
	l.batch = nil
	if b == nil {
		return
	}
	b.done = make(chan struct{})
	l.batches = append(l.batches, b)
	op.sem <- struct{}{}
	go func() {
		defer func() { <-op.sem; close(b.done) }()
		if light {
			b.entries = make([]*Entry, len(b.recs))
		} else {
			b.nodes = make([]*node, len(b.recs))
		}
		for i, r := range b.recs {
			n, err := openRecord(r, b.hashes[i], op.id, op.wrap, op.writer, op.authorOK)
			if err != nil {
				b.err, b.nodes, b.entries = err, nil, nil
				break
			}
			if light {
				b.entries[i] = entryOf(joinRemote(op.dir, n.body.Name), n)
			} else {
				b.nodes[i] = n
			}
		}
		b.recs, b.hashes = nil, nil
	}()
}

// opened waits for the workers and sets l.nodes (or, when light, l.entries) in listing order,
// or l.openErr to the first error.
func (l *rawListing) opened() {
	l.dispatch()
	if l.light {
		l.entries = make([]*Entry, 0, len(l.ents))
	} else {
		l.nodes = make([]*node, 0, len(l.ents))
	}
	for _, b := range l.batches {
		<-b.done
		if l.openErr == nil && b.err != nil {
			l.openErr = b.err
		}
		l.nodes, l.entries = append(l.nodes, b.nodes...), append(l.entries, b.entries...)
	}
	l.batches = nil
	if l.openErr != nil {
		l.nodes, l.entries = nil, nil
	}
}

// fetchListing downloads and strictly parses a folder listing. what names the folder in errors.
// A listing that fails to parse is fetched again (the server aborts a listing whose folder changed
// while it was streamed) before the error is returned.
// With an opener (nil: keep the parsed records) the records are opened as they arrive.
func (c *Client) fetchListing(ctx context.Context, id coffer.NodeID, what string, op *listOpener) (*rawListing, error) {
	var err error
	for attempt := 0; attempt < c.attempts(3); attempt++ {
		var raw *rawListing
		if raw, err = c.fetchListingOnce(ctx, id, what, op); err == nil || !errors.Is(err, coffer.ErrCorrupt) {
			return raw, err
		}
	}
	return nil, err
}

func (c *Client) fetchListingOnce(ctx context.Context, id coffer.NodeID, what string, op *listOpener) (*rawListing, error) {
	seen, err := c.state.head(c.tree)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.do(ctx, call{method: "GET", path: "/v1/trees/" + c.tree.String() + "/folders/" + id.String(), retry: true})
	if err != nil {
		return nil, fmt.Errorf("client: list %s: %w", what, err)
	}
	defer resp.Body.Close()
	raw := &rawListing{open: op}
	err = parseListing(bufio.NewReaderSize(resp.Body, 64<<10), raw, raw.addRecord)
	if op != nil {
		raw.opened() // waits for the workers even when the listing failed
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("client: list %s: %w", what, err)
	}
	raw.seen = seen
	return raw, nil
}

// parseListing reads the frames into l: head, buckets, bucket, records..., end, and nothing
// after. Each record frame is passed to record, in a buffer reused for the next frame.
func parseListing(r *bufio.Reader, l *rawListing, record func(frame []byte)) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("listing: "+format+": %w", append(args, coffer.ErrCorrupt)...)
	}
	var hdr [5]byte
	var scratch []byte
	next := func(limit int, reuse bool) (byte, []byte, error) {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return 0, nil, bad("truncated frame header (%v)", err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if int64(n) > int64(limit) {
			return 0, nil, bad("frame type %d of %d bytes exceeds %d", hdr[0], n, limit)
		}
		var b []byte
		if reuse {
			if cap(scratch) < int(n) {
				scratch = make([]byte, max(int(n), 4096))
			}
			b = scratch[:n]
		} else {
			b = make([]byte, n)
		}
		if _, err := io.ReadFull(r, b); err != nil {
			return 0, nil, bad("truncated frame type %d (%v)", hdr[0], err)
		}
		return hdr[0], b, nil
	}
	t, b, err := next(format.HeadLen, false)
	if err != nil {
		return err
	}
	if t != api.FrameHead {
		return bad("first frame has type %d, want head", t)
	}
	l.headRaw = b
	if t, b, err = next(256*32, true); err != nil {
		return err
	}
	if t != api.FrameBuckets || len(b) != 256*32 {
		return bad("second frame: type %d length %d, want buckets of %d bytes", t, len(b), 256*32)
	}
	l.buckets = new([256][32]byte)
	for i := range l.buckets {
		copy(l.buckets[i][:], b[32*i:])
	}
	if t, b, err = next(maxBucketFrame, true); err != nil {
		return err
	}
	if t != api.FrameBucket || len(b)%summaryLen != 0 {
		return bad("third frame: type %d length %d, want a bucket (multiple of %d bytes)", t, len(b), summaryLen)
	}
	for ; len(b) > 0; b = b[summaryLen:] {
		var s format.FolderSummary
		copy(s.Folder[:], b[:16])
		s.Count = binary.BigEndian.Uint64(b[16:24])
		copy(s.Root[:], b[24:56])
		l.bucket = append(l.bucket, s)
	}
	for {
		if t, b, err = next(maxRecordFrame, true); err != nil {
			return err
		}
		switch t {
		case api.FrameRecord:
			record(b)
			continue
		case api.FrameEnd:
			if len(b) != 0 {
				return bad("end frame with %d bytes", len(b))
			}
			if _, err := r.ReadByte(); err != io.EOF {
				return bad("data after the end frame")
			}
			return nil
		default:
			return bad("unexpected frame type %d", t)
		}
	}
}

// verifyHead parses and checks a served head: structure, signature, tree, writer (own tree: the
// account's signing key), and no rollback or fork (ancestry, forks.go) against the last head this
// device verified, which it then remembers.
func (c *Client) verifyHead(ctx context.Context, raw []byte, seen *format.Head, what string) (*format.Head, [32]byte, error) {
	if len(raw) == 0 {
		return nil, [32]byte{}, fmt.Errorf("client: list %s: the server serves no head for the account tree: %w", what, coffer.ErrRollback)
	}
	h, err := format.ParseHead(raw)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("client: list %s: %w", what, err)
	}
	hash := sha256.Sum256(raw)
	c.mu.Lock()
	known := c.cache != nil && c.cache.headHash == hash
	c.mu.Unlock()
	if !known {
		if err := h.VerifySignature(); err != nil {
			return nil, hash, fmt.Errorf("client: list %s: %w", what, err)
		}
		if h.Tree != c.tree {
			return nil, hash, fmt.Errorf("client: list %s: head of another tree: %w", what, coffer.ErrAuth)
		}
		if err := c.authoriseHead(h); err != nil {
			return nil, hash, fmt.Errorf("client: list %s: %w", what, err)
		}
	}
	if err := c.checkHead(ctx, seen, h); err != nil { // rollback and ancestry (forks.go)
		return nil, hash, fmt.Errorf("client: list %s: %w", what, err)
	}
	if err := c.state.rememberHead(h); err != nil {
		return nil, hash, err
	}
	return h, hash, nil
}

// openRecord checks and decrypts one record of folder id under wrap. writer is the head's writer;
// the record must be authored by it (or by a key authorOK accepts: shared folders) and be a live
// folder or file whose parent is id. hash is the hash of the record's bytes.
func openRecord(r *format.Record, hash [32]byte, id coffer.NodeID, wrap format.WrapKey, writer [32]byte,
	authorOK func([32]byte) bool) (*node, error) {
	switch {
	case r.Parent != id:
		return nil, fmt.Errorf("record %v is not a child of this folder: %w", r.Node, coffer.ErrAuth)
	case r.Author != writer && (authorOK == nil || !authorOK(r.Author)):
		return nil, fmt.Errorf("record %v has a foreign author: %w", r.Node, coffer.ErrAuth)
	case r.Kind != format.KindFolder && r.Kind != format.KindFile:
		return nil, fmt.Errorf("record %v of kind %d is not live: %w", r.Node, r.Kind, coffer.ErrAuth)
	}
	nk, err := r.OpenKey(wrap)
	if err != nil {
		return nil, err
	}
	body, err := r.OpenBody(nk)
	if err != nil {
		return nil, err
	}
	return &node{rec: headerOf(r), hash: hash, key: nk, body: body}, nil
}

// openChildren opens the records of folder id (see openRecord) with a few workers.
func openChildren(recs []*format.Record, ents []format.Entry, id coffer.NodeID, wrap format.WrapKey, writer [32]byte,
	authorOK func([32]byte) bool) ([]*node, error) {
	nodes := make([]*node, len(recs))
	open := func(i int) error {
		n, err := openRecord(recs[i], ents[i].Hash, id, wrap, writer, authorOK)
		if err != nil {
			return err
		}
		recs[i] = nil // the record's bytes are not needed any more
		nodes[i] = n
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(recs)/256+1)
	if workers <= 1 {
		for i := range recs {
			if err := open(i); err != nil {
				return nil, err
			}
		}
		return nodes, nil
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(recs); i += workers {
				if err := open(i); err != nil {
					errs[w] = err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return nodes, nil
}

// view is a consistent, verified picture of the tree at one head: the folders listed so far.
type view struct {
	head     *format.Head
	headHash [32]byte
	buckets  *[256][32]byte

	mu       sync.Mutex
	folders  map[coffer.NodeID]*folder
	entries  map[coffer.NodeID][]format.Entry // verified commitments of folders not decrypted
	bucketOf map[uint8][]format.FolderSummary

	top         *folder
	root, trash *node

	// authorOK accepts record authors other than the head's writer (shared folders); nil: none.
	authorOK func([32]byte) bool
}

func newView(h *format.Head, hash [32]byte, buckets *[256][32]byte) *view {
	return &view{head: h, headHash: hash, buckets: buckets, folders: map[coffer.NodeID]*folder{},
		entries: map[coffer.NodeID][]format.Entry{}, bucketOf: map[uint8][]format.FolderSummary{}}
}

// listEntries lists folder n at path p. A folder of light or more children (light > 0) that is not
// in the view yet is turned into entries as its listing streams in, without nodes, and returned
// as ents sorted by name (then node ID): the view then keeps only its verified commitments (as
// after forget). Otherwise the folder is decrypted, kept in the view and returned as f (ents nil).
func (v *view) listEntries(ctx context.Context, c *Client, n *node, p string, light int) (f *folder, ents []*Entry, err error) {
	if !n.isDir() {
		return nil, nil, fmt.Errorf("client: %s is not a folder: %w", p, coffer.ErrInvalid)
	}
	v.mu.Lock()
	f = v.folders[n.id()]
	v.mu.Unlock()
	if f != nil {
		return f, nil, nil
	}
	op := newListOpener(n.id(), n.childWrap(), v.head.Writer, v.authorOK)
	op.light, op.dir = light, p
	raw, err := c.fetchListing(ctx, n.id(), p, op)
	if err != nil {
		return nil, nil, err
	}
	if !raw.light {
		f, err = v.verifyRaw(raw, n.id(), n.childWrap(), true, p)
	} else if _, err = v.verifyRaw(raw, n.id(), n.childWrap(), false, p); err == nil && raw.openErr != nil {
		err = fmt.Errorf("client: list %s: %w", p, raw.openErr)
	}
	if errors.Is(err, errStale) {
		if _, _, herr := c.verifyHead(ctx, raw.headRaw, raw.seen, p); herr != nil {
			return nil, nil, herr
		}
	}
	if err != nil || !raw.light {
		return f, nil, err
	}
	ents, raw.entries = raw.entries, nil
	slices.SortFunc(ents, func(a, b *Entry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	if v.trash == nil || n.id() != v.trash.id() { // names are unique except in the trash
		for i := 1; i < len(ents); i++ {
			if ents[i].Name == ents[i-1].Name {
				return nil, nil, fmt.Errorf("client: list %s: two entries named %q: %w", p, ents[i].Name, coffer.ErrAuth)
			}
		}
	}
	return nil, ents, nil
}

// view returns a view at the tree's current head, reusing the cached one if the head did not move.
func (c *Client) view(ctx context.Context) (*view, error) {
	what := "top level"
	if c.share != nil {
		what = "shared folder " + c.rootPath() + " (top level)"
	}
	raw, err := c.fetchListing(ctx, coffer.NodeID{}, what, nil)
	if err != nil {
		return nil, c.noAccess(err)
	}
	if err := c.loadRoster(ctx, raw.headRaw); err != nil {
		return nil, err
	}
	h, hash, err := c.verifyHead(ctx, raw.headRaw, raw.seen, what)
	if err != nil {
		return nil, err
	}
	if err := c.gossipIfDue(ctx); err != nil { // head exchange with other devices (forks.go)
		return nil, err
	}
	c.mu.Lock()
	cached := c.cache
	c.mu.Unlock()
	if cached != nil && cached.headHash == hash {
		return cached, nil
	}
	v := newView(h, hash, raw.buckets)
	v.authorOK = c.authorCheck()
	top, err := v.verifyRaw(raw, coffer.NodeID{}, c.topWrap(), true, what)
	if err != nil {
		return nil, err
	}
	for _, n := range top.children {
		var slot **node
		switch n.body.Role {
		case format.RoleRoot:
			slot = &v.root
		case format.RoleTrash:
			slot = &v.trash
		default:
			continue
		}
		if *slot != nil || !n.isDir() {
			return nil, fmt.Errorf("client: list %s: two folders with the role %d: %w", what, n.body.Role, coffer.ErrAuth)
		}
		*slot = n
	}
	if v.root == nil || v.trash == nil {
		return nil, fmt.Errorf("client: list %s: the root or trash folder is missing: %w", what, coffer.ErrAuth)
	}
	v.top = top
	c.mu.Lock()
	if c.cache == nil || c.cache.head.Version <= h.Version {
		c.cache = v
	}
	c.mu.Unlock()
	return v, nil
}

// verifyRaw checks a raw listing of folder id against the view's head and, if decrypt, opens its
// children. A listing at another head returns errStale (after verifying and remembering that head).
func (v *view) verifyRaw(raw *rawListing, id coffer.NodeID, wrap format.WrapKey, decrypt bool, what string) (*folder, error) {
	if sha256.Sum256(raw.headRaw) != v.headHash {
		return nil, errStale
	}
	if *raw.buckets != *v.buckets {
		return nil, fmt.Errorf("client: list %s: bucket hashes differ under one head: %w", what, coffer.ErrAuth)
	}
	if raw.recErr != nil {
		return nil, fmt.Errorf("client: list %s: %w", what, raw.recErr)
	}
	recs, ents := raw.recs, raw.ents
	raw.recs = nil // openChildren drops each record's ciphertext as it goes
	if raw.open != nil && (raw.open.id != id || raw.open.wrap != wrap || raw.open.writer != v.head.Writer) {
		return nil, fmt.Errorf("client: list %s: records opened for another folder or writer: %w", what, coffer.ErrInvalid)
	}
	if err := tree.VerifyListing(v.head.StateRoot, v.buckets, raw.bucket, id, ents); err != nil {
		return nil, fmt.Errorf("client: list %s: %w", what, err)
	}
	v.mu.Lock()
	v.bucketOf[format.BucketOf(id)] = raw.bucket
	if !decrypt {
		v.entries[id] = ents
	}
	v.mu.Unlock()
	if !decrypt {
		return nil, nil
	}
	var nodes []*node
	var err error
	if raw.open != nil {
		nodes, err = raw.nodes, raw.openErr
		raw.nodes = nil
	} else {
		nodes, err = openChildren(recs, ents, id, wrap, v.head.Writer, v.authorOK)
	}
	if err != nil {
		return nil, fmt.Errorf("client: list %s: %w", what, err)
	}
	isTrash := v.trash != nil && id == v.trash.id()
	f := newFolder(id, wrap, nodes, isTrash)
	if !isTrash && len(f.byName) != len(nodes) { // byName keeps the first node of a name
		for _, n := range nodes {
			if f.byName[n.body.Name] != n {
				return nil, fmt.Errorf("client: list %s: two entries named %q: %w", what, n.body.Name, coffer.ErrAuth)
			}
		}
	}
	v.mu.Lock()
	v.folders[id] = f
	v.mu.Unlock()
	return f, nil
}

// bigFolder is the number of children from which List drops a folder's decrypted nodes from the
// view once it has used them (see forget).
const bigFolder = 10000

// forget drops a decrypted folder from the view, keeping only its verified commitment entries
// (48 bytes a child, what commits need), so the nodes of a huge folder can be freed once used. A
// later lookup in the folder lists and verifies it again.
func (v *view) forget(f *folder) {
	ents := f.entries()
	v.mu.Lock()
	if v.folders[f.id] == f {
		delete(v.folders, f.id)
		v.entries[f.id] = ents
	}
	v.mu.Unlock()
}

// list returns the verified listing of folder n (what names it in errors).
func (v *view) list(ctx context.Context, c *Client, n *node, what string) (*folder, error) {
	f, _, err := v.listEntries(ctx, c, n, what, 0) // light 0: always decrypted nodes
	return f, err
}

// withView runs fn on a view of the current head, restarting on errStale.
func (c *Client) withView(ctx context.Context, fn func(v *view) error) error {
	var err error
	for i := 0; i < staleRetries; i++ {
		var v *view
		if v, err = c.view(ctx); errors.Is(err, errStale) {
			continue // a shared folder's key changed: read again
		} else if err != nil {
			return err
		}
		if err = fn(v); !errors.Is(err, errStale) {
			return c.verdict(stageListing, err) // failure alerts (alert.go)
		}
	}
	return fmt.Errorf("client: the tree keeps changing, try again: %w", coffer.ErrConflict)
}

// viewSource is tree.Source over a view: verified commitments of the folders a commit touches.
type viewSource struct {
	ctx   context.Context
	c     *Client
	v     *view
	fresh map[coffer.NodeID]bool // folders created by the commit (no children yet)
}

func (s *viewSource) Children(id coffer.NodeID) ([]format.Entry, error) {
	if s.fresh[id] {
		return nil, nil
	}
	s.v.mu.Lock()
	f, ents := s.v.folders[id], s.v.entries[id]
	s.v.mu.Unlock()
	if f != nil {
		return f.entries(), nil
	}
	if ents != nil {
		return ents, nil
	}
	if err := s.fetchHashes(id); err != nil {
		return nil, err
	}
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	return s.v.entries[id], nil
}

func (s *viewSource) Bucket(b uint8) ([]format.FolderSummary, error) {
	s.v.mu.Lock()
	sums, ok := s.v.bucketOf[b]
	s.v.mu.Unlock()
	if ok {
		return sums, nil
	}
	// The listing of any folder ID serves its bucket, even for a folder that does not exist.
	if err := s.fetchHashes(coffer.NodeID{b, 0xff}); err != nil {
		return nil, err
	}
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	return s.v.bucketOf[b], nil
}

func (s *viewSource) Buckets() (*[256][32]byte, error) { return s.v.buckets, nil }

func (s *viewSource) fetchHashes(id coffer.NodeID) error {
	what := "folder " + id.String()
	raw, err := s.c.fetchListing(s.ctx, id, what, nil)
	if err != nil {
		return err
	}
	_, err = s.v.verifyRaw(raw, id, format.WrapKey{}, false, what)
	if errors.Is(err, errStale) {
		if _, _, herr := s.c.verifyHead(s.ctx, raw.headRaw, raw.seen, what); herr != nil {
			return herr
		}
	}
	return err
}

// sortNodes sorts by node ID (the commitment order).
func sortNodes(ns []*node) {
	slices.SortFunc(ns, func(a, b *node) int { return bytes.Compare(a.rec.Node[:], b.rec.Node[:]) })
}
