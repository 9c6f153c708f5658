package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// located is a node found by path under one view.
type located struct {
	path   string
	node   *node
	parent *folder // the folder holding node (the top level for the root)
	chain  []*node // the root ... node
}

// resolve finds the node at a remote path; "/" is the root folder.
func (v *view) resolve(ctx context.Context, c *Client, p string) (*located, error) {
	elems, err := splitRemote(p)
	if err != nil {
		return nil, err
	}
	loc := &located{path: c.rootPath(), node: v.root, parent: v.top, chain: []*node{v.root}}
	for _, e := range elems {
		if !loc.node.isDir() {
			return nil, fmt.Errorf("client: %s: %s is not a folder: %w", joinRemote(loc.path, e), loc.path, coffer.ErrNotFound)
		}
		f, err := v.list(ctx, c, loc.node, loc.path)
		if err != nil {
			return nil, err
		}
		n := f.byName[e]
		if n == nil {
			return nil, fmt.Errorf("client: %s: %w", joinRemote(loc.path, e), coffer.ErrNotFound)
		}
		loc = &located{path: joinRemote(loc.path, e), node: n, parent: f, chain: append(slices.Clip(loc.chain), n)}
	}
	return loc, nil
}

// entryOf converts a verified node.
func entryOf(p string, n *node) *Entry {
	e := &Entry{
		Path: p, Name: n.body.Name, ID: n.id(), Parent: n.rec.Parent, IsDir: n.isDir(),
		MTime: time.Unix(0, n.body.MTime), Mode: n.body.Mode, Version: n.rec.Version,
	}
	if n.body.Role == format.RoleRoot {
		e.Name = rootName(p)
	}
	e.Shared = n.body.Mount
	if ct := n.body.Content; ct != nil {
		e.Size = int64(ct.Size)
		e.Hash = ct.Hash
	}
	if o := n.body.Origin; o != (format.LinkID{}) {
		e.Origin = base64.RawURLEncoding.EncodeToString(o[:])
	}
	return e
}

// sortedByName returns a folder's children sorted by name (then node ID, for trash duplicates).
func sortedByName(f *folder) []*node {
	out := slices.Clone(f.children)
	slices.SortFunc(out, func(a, b *node) int {
		if c := strings.Compare(a.body.Name, b.body.Name); c != 0 {
			return c
		}
		return bytes.Compare(a.rec.Node[:], b.rec.Node[:])
	})
	return out
}

// Stat returns the entry at an absolute remote path (coffer.ErrNotFound).
func (c *Client) Stat(ctx context.Context, path string) (*Entry, error) {
	if tc, rel, err := c.route(ctx, path, false); err != nil || tc != c {
		if err != nil {
			return nil, err
		}
		return tc.Stat(ctx, rel)
	}
	var e *Entry
	err := c.withView(ctx, func(v *view) error {
		loc, err := v.resolve(ctx, c, path)
		if err != nil {
			return err
		}
		e = entryOf(loc.path, loc.node)
		if c.share != nil && loc.node == v.root {
			e.Shared = c.tree
		}
		return nil
	})
	return e, err
}

// List returns a folder's children sorted by name (a file path returns that file alone).
func (c *Client) List(ctx context.Context, path string) ([]*Entry, error) {
	if tc, rel, err := c.route(ctx, path, false); err != nil || tc != c {
		if err != nil {
			return nil, err
		}
		return tc.List(ctx, rel)
	}
	var out []*Entry
	err := c.withView(ctx, func(v *view) error {
		out = nil
		loc, err := v.resolve(ctx, c, path)
		if err != nil {
			return err
		}
		if !loc.node.isDir() {
			out = []*Entry{entryOf(loc.path, loc.node)}
			return nil
		}
		big := bigFolder
		if c.cfg.BigFolder > 0 {
			big = min(big, c.cfg.BigFolder)
		}
		f, ents, err := v.listEntries(ctx, c, loc.node, loc.path, big)
		if err != nil || ents != nil {
			out = ents
			return err
		}
		sorted := sortedByName(f)
		if len(sorted) >= big {
			v.forget(f) // each node is freed as soon as its entry is made
		}
		f = nil
		out = make([]*Entry, 0, len(sorted))
		for i, n := range sorted {
			out = append(out, entryOf(joinRemote(loc.path, n.body.Name), n))
			sorted[i] = nil
		}
		return nil
	})
	return out, err
}

// walked is one entry of a walk with the index just past its subtree.
type walked struct {
	e    *Entry
	n    *node
	end  int
	rel  []string // path elements relative to the walk's start
	from *folder  // folder holding n
}

// collect lists loc and every descendant under one view, depth-first, parents first.
func (v *view) collect(ctx context.Context, c *Client, loc *located) ([]walked, error) {
	var out []walked
	var rec func(p string, n *node, from *folder, rel []string) error
	rec = func(p string, n *node, from *folder, rel []string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		i := len(out)
		out = append(out, walked{e: entryOf(p, n), n: n, rel: rel, from: from})
		if n.isDir() {
			f, err := v.list(ctx, c, n, p)
			if err != nil {
				return err
			}
			for _, ch := range sortedByName(f) {
				if err := rec(joinRemote(p, ch.body.Name), ch, f, append(slices.Clip(rel), ch.body.Name)); err != nil {
					return err
				}
			}
		}
		out[i].end = len(out)
		return nil
	}
	if err := rec(loc.path, loc.node, loc.parent, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// Walk calls fn for path and, for folders, every descendant (depth-first, parents first, children
// sorted by name). The whole subtree is listed and verified at one head before fn is first
// called. fn may return fs.SkipDir to skip a folder's descendants, or fs.SkipAll to stop.
func (c *Client) Walk(ctx context.Context, path string, fn func(*Entry) error) error {
	if tc, rel, err := c.route(ctx, path, false); err != nil || tc != c {
		if err != nil {
			return err
		}
		return tc.Walk(ctx, rel, fn)
	}
	var all []walked
	err := c.withView(ctx, func(v *view) error {
		loc, err := v.resolve(ctx, c, path)
		if err != nil {
			return err
		}
		all, err = v.collect(ctx, c, loc)
		return err
	})
	if err != nil {
		return err
	}
	for i := 0; i < len(all); {
		err := fn(all[i].e)
		switch {
		case errors.Is(err, fs.SkipDir) && all[i].e.IsDir:
			i = all[i].end
		case errors.Is(err, fs.SkipAll):
			return nil
		case err != nil:
			return err
		default:
			if e := all[i].e; i > 0 && e.IsDir && e.Shared != (coffer.TreeID{}) {
				if stop, err := c.walkMount(ctx, e, fn); err != nil || stop {
					return err
				}
			}
			i++
		}
	}
	return nil
}

// walkMount continues a walk of the account tree into the shared folder mounted at e (its
// entries after e itself). A mount whose folder this account can no longer read (left,
// removed) is skipped. stop reports that fn asked to end the walk.
func (c *Client) walkMount(ctx context.Context, e *Entry, fn func(*Entry) error) (stop bool, err error) {
	st := c.shares.get(e.Shared)
	if c.share != nil || st == nil {
		return false, nil
	}
	first := true
	err = c.inTree(st, e.Path).Walk(ctx, "/", func(x *Entry) error {
		if first {
			first = false
			return nil
		}
		err := fn(x)
		if errors.Is(err, fs.SkipAll) {
			stop = true
		}
		return err
	})
	if errors.Is(err, coffer.ErrNotFound) || errors.Is(err, coffer.ErrForbidden) {
		c.log.Debug("client: walk skips a shared folder this account cannot read", "err", err)
		return false, nil
	}
	return stop, err
}

// Trash lists the trash, sorted by name. TrashOrigin is the folder each entry came from and Path
// the path it would be restored to ("" when the origin folder no longer exists).
func (c *Client) Trash(ctx context.Context) ([]*Entry, error) {
	var out []*Entry
	err := c.withView(ctx, func(v *view) error {
		out = nil
		f, err := v.list(ctx, c, v.trash, "trash")
		if err != nil {
			return err
		}
		origins := map[coffer.NodeID]string{}
		for _, n := range sortedByName(f) {
			e := entryOf("", n)
			if o := n.body.TrashOrigin; !o.IsZero() {
				p, ok := origins[o]
				if !ok {
					p, _, err = v.folderPath(ctx, c, o)
					if errors.Is(err, errStale) {
						return err
					}
					origins[o] = p
				}
				if p != "" {
					e.TrashOrigin = p
					e.Path = joinRemote(p, n.body.Name)
				}
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// folderPath finds the path of a live folder under the root by its ID. The parent chain comes
// from the server's version endpoint (signed records, used only as hints); every step is then
// verified top-down through listings. It returns "" and an error if the folder is not reachable.
func (v *view) folderPath(ctx context.Context, c *Client, id coffer.NodeID) (string, *node, error) {
	if id == v.root.id() {
		return c.rootPath(), v.root, nil
	}
	var chain []coffer.NodeID
	for cur := id; ; {
		if len(chain) > 256 {
			return "", nil, fmt.Errorf("client: folder %v: too deep: %w", id, coffer.ErrNotFound)
		}
		chain = append(chain, cur)
		rec, err := c.currentRecord(ctx, cur)
		if err != nil {
			return "", nil, err
		}
		if rec.Parent == v.root.id() {
			break
		}
		if rec.Parent.IsZero() {
			return "", nil, fmt.Errorf("client: folder %v is not under the root: %w", id, coffer.ErrNotFound)
		}
		cur = rec.Parent
	}
	p, n := c.rootPath(), v.root
	for i := len(chain) - 1; i >= 0; i-- {
		f, err := v.list(ctx, c, n, p)
		if err != nil {
			return "", nil, err
		}
		k, found := slices.BinarySearchFunc(f.children, chain[i], func(a *node, t coffer.NodeID) int {
			return bytes.Compare(a.rec.Node[:], t[:])
		})
		if !found || !f.children[k].isDir() {
			return "", nil, fmt.Errorf("client: folder %v: %w", id, coffer.ErrNotFound)
		}
		n = f.children[k]
		p = joinRemote(p, n.body.Name)
	}
	return p, n, nil
}

// versions fetches a node's records, newest first, checking signatures, authorship, node ID and
// the hash chain. The first is the current record.
func (c *Client) versions(ctx context.Context, id coffer.NodeID, what string) ([]*format.Record, error) {
	var resp api.VersionsResponse
	if err := c.http.json(ctx, "GET", "/v1/trees/"+c.tree.String()+"/nodes/"+id.String()+"/versions", nil, &resp, true, false); err != nil {
		return nil, fmt.Errorf("client: versions of %s: %w", what, err)
	}
	if len(resp.Records) == 0 {
		return nil, fmt.Errorf("client: versions of %s: none served: %w", what, coffer.ErrNotFound)
	}
	recs := make([]*format.Record, len(resp.Records))
	for i, b := range resp.Records {
		r, err := format.ParseRecord(b)
		if err != nil {
			return nil, fmt.Errorf("client: versions of %s: %w", what, err)
		}
		if r.Node != id || !c.authorOK(r.Author) {
			return nil, fmt.Errorf("client: versions of %s: record of another node or author: %w", what, coffer.ErrAuth)
		}
		if err := r.VerifySignature(); err != nil {
			return nil, fmt.Errorf("client: versions of %s: %w", what, err)
		}
		if i > 0 && (recs[i-1].Version != r.Version+1 || recs[i-1].Prev != r.Hash()) {
			return nil, fmt.Errorf("client: versions of %s: version %d does not chain to version %d: %w", what, recs[i-1].Version, r.Version, coffer.ErrAuth)
		}
		recs[i] = r
	}
	return recs, nil
}

// currentRecord is the first record of versions (a hint; callers verify through listings).
func (c *Client) currentRecord(ctx context.Context, id coffer.NodeID) (*format.Record, error) {
	recs, err := c.versions(ctx, id, "folder "+id.String())
	if err != nil {
		return nil, err
	}
	return recs[0], nil
}
