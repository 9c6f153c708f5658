package client

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// Owner side of upload-only links: importing drops (anonymous uploads) into the linked folders.

// Drop statuses (DropResult.Status).
const (
	DropImported        = "imported"         // committed into the folder now
	DropAlreadyImported = "already imported" // committed earlier; the pending copy was removed
	DropRefused         = "refused"          // failed verification: not committed, deleted from the server
	DropPending         = "pending"          // could not be imported now (e.g. the folder is gone); kept
)

// dropCommitBatch bounds the drops committed together (and their description bytes).
const (
	dropCommitBatch = 500
	dropCommitBytes = 32 << 20
)

// DropResult describes one drop handled by ImportDrops.
type DropResult struct {
	ID       string    // hex drop ID
	Link     string    // base64url link ID, as in LinkInfo.ID
	Received time.Time // when the server stored it
	Status   string    // DropImported, DropAlreadyImported, DropRefused or DropPending
	Path     string    // where it was imported (DropImported)
	IsDir    bool      // an empty folder
	Size     int64     // file size (from the verified description)
	Err      error     // why it was refused or is still pending
}

// pendingDrop is a drop that passed verification, waiting to be placed.
type pendingDrop struct {
	res  *DropResult
	link *format.Link
	node coffer.NodeID
	file *format.DropFile
}

// ImportDrops imports the account's pending drops: every drop is opened with this account's
// keys and verified (FORMAT.md §12.3: link key authenticator, names, path, mode, content
// structure and key commitment, blobs it references listed and kept by the server); a drop that
// fails is refused, never committed, and deleted from the server (its result carries the error).
// Verified drops are committed into their link's folder, under their folder path (existing
// folders are reused, missing ones created), as records signed by this account whose body
// records the link as their origin; a taken name gets a " (1)", " (2)"... suffix, nothing is
// overwritten. A drop whose link folder is gone or in the trash stays pending. Imported drops are
// then deleted from the server. It returns one result per drop seen, oldest first.
func (c *Client) ImportDrops(ctx context.Context) ([]DropResult, error) {
	infos, err := c.pendingDrops(ctx)
	if err != nil || len(infos) == 0 {
		return nil, err
	}
	links, err := c.uploadLinks(ctx)
	if err != nil {
		return nil, err
	}
	opener, err := format.NewDropOpener(c.bundle)
	if err != nil {
		return nil, err
	}
	results := make([]DropResult, len(infos))
	var ready []*pendingDrop
	for i, info := range infos {
		pd, err := c.checkDrop(ctx, info, links, opener, &results[i])
		if err != nil {
			return nil, err // a transport error: nothing decided
		}
		if pd != nil {
			ready = append(ready, pd)
		}
	}
	for len(ready) > 0 {
		n, size := 0, 0
		for n < len(ready) && n < dropCommitBatch {
			sz := 400 + 44*len(contentChunks(ready[n].file))
			if n > 0 && size+sz > dropCommitBytes {
				break
			}
			size += sz
			n++
		}
		batch := ready[:n]
		err := c.commitDrops(ctx, batch)
		var se *ServerError
		if errors.As(err, &se) && se.Code == api.CodeInvalidCommit {
			// Most likely a drop imported before (its node exists) whose deletion was lost:
			// ask about each node and retry without those.
			if batch, err = c.dropAlreadyImported(ctx, batch); err == nil {
				err = c.commitDrops(ctx, batch)
			}
		}
		if err != nil {
			return results, err
		}
		ready = ready[n:]
	}
	if err := c.deleteDrops(ctx, results); err != nil {
		return results, err
	}
	return results, nil
}

func contentChunks(f *format.DropFile) []format.ChunkRef {
	if f.Content == nil {
		return nil
	}
	return f.Content.Chunks
}

// pendingDrops lists every pending drop of the account.
func (c *Client) pendingDrops(ctx context.Context) ([]api.DropInfo, error) {
	var out []api.DropInfo
	var after int64
	for {
		var resp api.DropsResponse
		q := "/v1/drops?limit=1000&after=" + strconv.FormatInt(after, 10)
		if err := c.http.json(ctx, "GET", q, nil, &resp, true, false); err != nil {
			var se *ServerError
			if errors.As(err, &se) && se.Status == 404 && se.Code == api.CodeNotFound && len(out) == 0 {
				return nil, nil // a server without upload-only links
			}
			return nil, fmt.Errorf("client: drops: %w", err)
		}
		for _, d := range resp.Drops {
			if d.Seq <= after {
				return nil, fmt.Errorf("client: drops: the server listed drops out of order: %w", coffer.ErrCorrupt)
			}
			after = d.Seq
			out = append(out, d)
		}
		if !resp.More || len(resp.Drops) == 0 {
			return out, nil
		}
	}
}

// uploadLinks returns the account's upload-only links by hex ID, each verified as its own.
func (c *Client) uploadLinks(ctx context.Context) (map[string]*format.Link, error) {
	var resp api.LinksResponse
	if err := c.http.json(ctx, "GET", "/v1/links", nil, &resp, true, false); err != nil {
		return nil, fmt.Errorf("client: links: %w", err)
	}
	out := map[string]*format.Link{}
	for _, info := range resp.Links {
		fl, err := format.ParseLink(info.Record)
		if err == nil {
			err = fl.VerifySignature()
		}
		if err != nil || fl.Owner != c.signPub || fl.Tree != c.tree || hex.EncodeToString(fl.ID[:]) != info.ID {
			continue // not usable for drops; Links reports such records
		}
		if fl.UploadOnly() {
			out[info.ID] = fl
		}
	}
	return out, nil
}

// checkDrop verifies one served drop and fills res. It returns the drop to place, or nil when it
// was refused or already imported; an error only for transport failures.
func (c *Client) checkDrop(ctx context.Context, info api.DropInfo, links map[string]*format.Link, opener *format.DropOpener,
	res *DropResult) (*pendingDrop, error) {
	*res = DropResult{ID: info.ID, Received: time.Unix(info.Created, 0)}
	refuse := func(err error) (*pendingDrop, error) {
		res.Status, res.Err = DropRefused, fmt.Errorf("drop %s: %w", info.ID, err)
		c.log.Warn("client: refused a drop", "drop", info.ID, "err", err)
		return nil, nil
	}
	d, err := format.ParseDrop(info.Drop)
	if err != nil {
		return refuse(err)
	}
	if hex.EncodeToString(d.ID[:]) != info.ID || hex.EncodeToString(d.Link[:]) != info.Link {
		return refuse(fmt.Errorf("the server listed it under another ID or link: %w", coffer.ErrAuth))
	}
	res.Link = base64.RawURLEncoding.EncodeToString(d.Link[:])
	fl := links[info.Link]
	if fl == nil {
		return refuse(fmt.Errorf("not for one of your upload-only links: %w", coffer.ErrAuth))
	}
	f, err := opener.Open(d)
	if err != nil {
		return refuse(err)
	}
	res.IsDir = f.Content == nil
	if f.Content != nil {
		res.Size = int64(f.Content.Size)
		for _, b := range blobsOf(f.Content) {
			if !slices.Contains(info.Blobs, b) {
				return refuse(fmt.Errorf("its content references blob %s that the upload did not list: %w", b, coffer.ErrCorrupt))
			}
		}
	}
	return &pendingDrop{res: res, link: fl, node: format.DropNodeID(d.Link, d.ID), file: f}, nil
}

// dropAlreadyImported marks the drops whose node is already live and returns the others.
func (c *Client) dropAlreadyImported(ctx context.Context, batch []*pendingDrop) ([]*pendingDrop, error) {
	var rest []*pendingDrop
	for _, pd := range batch {
		live, err := c.nodeLive(ctx, pd.node)
		if err != nil {
			return nil, err
		}
		if live {
			pd.res.Status, pd.res.Err, pd.res.Path = DropAlreadyImported, nil, ""
			continue
		}
		rest = append(rest, pd)
	}
	return rest, nil
}

// nodeLive reports whether a node of the account's tree is live (a hint from the server, used
// only to skip re-importing a drop whose import was committed before its deletion).
func (c *Client) nodeLive(ctx context.Context, id coffer.NodeID) (bool, error) {
	_, err := c.versions(ctx, id, "imported drop "+id.String())
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, coffer.ErrNotFound):
		return false, nil
	}
	return false, err
}

// dropPlacer places drops into folders within one commit attempt.
type dropPlacer struct {
	ctx     context.Context
	c       *Client
	t       *txn
	names   map[coffer.NodeID]map[string]*node // children by name, including those staged now
	targets map[format.LinkID]*located
}

// children returns dir's children by name (the listing plus what this commit adds).
func (p *dropPlacer) children(dir *node, dirPath string) (map[string]*node, error) {
	if m := p.names[dir.id()]; m != nil {
		return m, nil
	}
	m := map[string]*node{}
	if !p.t.fresh[dir.id()] {
		f, err := p.t.v.list(p.ctx, p.c, dir, dirPath)
		if err != nil {
			return nil, err
		}
		for name, n := range f.byName {
			m[name] = n
		}
	}
	p.names[dir.id()] = m
	return m, nil
}

// suffixed returns name with " (k)" before its extension (files) or at its end (folders),
// shortening the stem to keep within 255 bytes.
func suffixed(name string, k int, isDir bool) string {
	if k == 0 {
		return name
	}
	stem, ext := name, ""
	if !isDir {
		if e := path.Ext(name); e != name && e != "" && len(e) < 64 {
			stem, ext = name[:len(name)-len(e)], e
		}
	}
	suf := " (" + strconv.Itoa(k) + ")"
	for len(stem)+len(suf)+len(ext) > 255 && len(stem) > 0 {
		_, sz := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-sz]
	}
	return stem + suf + ext
}

// folder returns the folder named name in dir, reusing one of that name (or of the first
// suffixed name that is a folder or free) or staging a new one with id (random if zero).
func (p *dropPlacer) folder(dir *node, dirPath, name string, id coffer.NodeID, f *format.DropFile, origin format.LinkID) (*node, string, error) {
	kids, err := p.children(dir, dirPath)
	if err != nil {
		return nil, "", err
	}
	for k := 0; ; k++ {
		cand := suffixed(name, k, true)
		ex := kids[cand]
		if ex != nil && !ex.isDir() {
			continue
		}
		if ex != nil {
			return ex, joinRemote(dirPath, cand), nil
		}
		if id.IsZero() {
			id = coffer.NewNodeID()
		}
		mtime, mode := time.Now().UnixNano(), uint32(0o755)
		if f != nil {
			mtime, mode = f.MTime, f.Mode
		}
		n, err := p.t.put(format.KindFolder, id, dir, nil, format.NewNodeKey(),
			&format.Body{Name: cand, MTime: mtime, Mode: mode, Origin: origin})
		if err != nil {
			return nil, "", err
		}
		kids[cand] = n
		return n, joinRemote(dirPath, cand), nil
	}
}

// place stages one drop; it returns errDropPending-wrapped errors for drops to keep.
func (p *dropPlacer) place(pd *pendingDrop) error {
	target := p.targets[pd.link.ID]
	if target == nil {
		fp, n, err := p.t.v.folderPath(p.ctx, p.c, pd.link.Node)
		if err != nil {
			if errors.Is(err, coffer.ErrNotFound) {
				return fmt.Errorf("%w: the link's folder is no longer in your drive (deleted or in the trash)", errDropPending)
			}
			return err
		}
		target = &located{path: fp, node: n}
		p.targets[pd.link.ID] = target
	}
	dir, dirPath := target.node, target.path
	for _, name := range pd.file.Path {
		var err error
		if dir, dirPath, err = p.folder(dir, dirPath, name, coffer.NodeID{}, nil, pd.link.ID); err != nil {
			return err
		}
	}
	f := pd.file
	if f.Content == nil {
		_, fp, err := p.folder(dir, dirPath, f.Name, pd.node, f, pd.link.ID)
		pd.res.Path = fp
		return err
	}
	kids, err := p.children(dir, dirPath)
	if err != nil {
		return err
	}
	name := f.Name
	for k := 1; kids[name] != nil; k++ {
		name = suffixed(f.Name, k, false)
	}
	n, err := p.t.put(format.KindFile, pd.node, dir, nil, format.NewNodeKey(),
		&format.Body{Name: name, MTime: f.MTime, Mode: f.Mode, Content: f.Content, Origin: pd.link.ID})
	if err != nil {
		return err
	}
	kids[name] = n
	pd.res.Path = joinRemote(dirPath, name)
	return nil
}

var errDropPending = errors.New("kept for later")

// commitDrops commits a batch of verified drops (one commit, rebuilt if the head moves).
func (c *Client) commitDrops(ctx context.Context, batch []*pendingDrop) error {
	if len(batch) == 0 {
		return nil
	}
	err := c.update(ctx, func(t *txn) error {
		p := &dropPlacer{ctx: ctx, c: c, t: t, names: map[coffer.NodeID]map[string]*node{}, targets: map[format.LinkID]*located{}}
		for _, pd := range batch {
			pd.res.Status, pd.res.Err, pd.res.Path = DropImported, nil, ""
			if err := p.place(pd); err != nil {
				if !errors.Is(err, errDropPending) {
					return err
				}
				pd.res.Status, pd.res.Err = DropPending, fmt.Errorf("drop %s: %w", pd.res.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		for _, pd := range batch {
			if pd.res.Status == DropImported {
				pd.res.Status, pd.res.Err, pd.res.Path = DropPending, err, ""
			}
		}
		return fmt.Errorf("client: import drops: %w", err)
	}
	return nil
}

// deleteDrops removes imported, already imported and refused drops from the server, in batches.
func (c *Client) deleteDrops(ctx context.Context, results []DropResult) error {
	var ids []string
	for _, r := range results {
		if r.Status != DropPending {
			ids = append(ids, r.ID)
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), api.MaxDropsDelete)
		var resp api.DropsDeleteResponse
		if err := c.http.json(ctx, "POST", "/v1/drops/delete", api.DropsDeleteRequest{Drops: ids[:n]}, &resp, true, false); err != nil {
			return fmt.Errorf("client: delete imported drops: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}
