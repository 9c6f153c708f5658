package client

import (
	"context"

	"coffer"
	"coffer/format"
)

// HPKESeals is how many HPKE seals (invites) this session made.
func HPKESeals(c *Client) int64 { return c.shares.seals.Load() }

// HeldKeys returns every key c holds for the shared folder mounted at p: the tree key and the
// node and content keys of every node it can read (what a member keeps after it is removed).
func HeldKeys(ctx context.Context, c *Client, p string) (format.TreeKey, []format.NodeKey, []format.ContentKey, error) {
	tc, _, err := c.route(ctx, p, false)
	if err != nil {
		return format.TreeKey{}, nil, nil, err
	}
	tc.share.mu.Lock()
	tk := tc.share.key
	tc.share.mu.Unlock()
	var nks []format.NodeKey
	var cks []format.ContentKey
	err = tc.withView(ctx, func(v *view) error {
		nks, cks = nil, nil
		for _, top := range []*node{v.root, v.trash} {
			all, err := v.collect(ctx, tc, &located{path: tc.rootPath(), node: top, parent: v.top})
			if err != nil {
				return err
			}
			for _, w := range all {
				nks = append(nks, w.n.key)
				if ct := w.n.body.Content; ct != nil {
					cks = append(cks, ct.Key)
				}
			}
		}
		return nil
	})
	return tk, nks, cks, err
}

// RawRecords returns the raw records of every live node of the tree holding p (as served).
func RawRecords(ctx context.Context, c *Client, p string) ([][]byte, error) {
	tc, _, err := c.route(ctx, p, false)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	err = tc.withView(ctx, func(v *view) error {
		out = nil
		var walk func(id [16]byte) error
		walk = func(id [16]byte) error {
			raw, err := tc.fetchListing(ctx, id, "raw", nil)
			if err != nil {
				return err
			}
			if raw.recErr != nil {
				return raw.recErr
			}
			for _, r := range raw.recs {
				out = append(out, r.Marshal())
				if r.Kind == format.KindFolder {
					if err := walk(r.Node); err != nil {
						return err
					}
				}
			}
			return nil
		}
		return walk([16]byte{})
	})
	return out, err
}

// SetBigFolder sets the number of children from which List frees a folder's decrypted nodes.
func SetBigFolder(c *Client, n int) { c.cfg.BigFolder = n }

// CachedFolder reports whether c's cached view holds folder id decrypted (nodes) and whether it
// holds its verified commitment entries only.
func CachedFolder(c *Client, id coffer.NodeID) (nodes, entries bool) {
	c.mu.Lock()
	v := c.cache
	c.mu.Unlock()
	if v == nil {
		return false, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.folders[id] != nil, v.entries[id] != nil
}

// ListUnderWrongKey lists folder p as List does, through both paths (light: entries as the
// listing streams in; not light: nodes), after replacing the folder's node key by a random one,
// so that every child's record fails to open. It returns the entries and error of each path.
func ListUnderWrongKey(ctx context.Context, c *Client, p string) (lightN int, lightErr error, nodesN int, nodesErr error) {
	err := c.withView(ctx, func(v *view) error {
		loc, err := v.resolve(ctx, c, p)
		if err != nil {
			return err
		}
		bad := &node{rec: loc.node.rec, hash: loc.node.hash, key: format.NewNodeKey(), body: loc.node.body}
		v.mu.Lock()
		delete(v.folders, bad.id()) // the view may hold the folder from the upload
		v.mu.Unlock()
		_, ents, err := v.listEntries(ctx, c, bad, p, 1)
		lightN, lightErr = len(ents), err
		v.mu.Lock()
		delete(v.folders, bad.id())
		v.mu.Unlock()
		f, _, err := v.listEntries(ctx, c, bad, p, 0)
		if f != nil {
			nodesN = len(f.children)
		}
		nodesErr = err
		return nil
	})
	if err != nil {
		return 0, err, 0, err
	}
	return
}

// SetCommitBatch sets how many files, and how many chunk references, an upload commits at most
// per commit.
func SetCommitBatch(c *Client, files, chunks int) { c.batchFiles, c.batchChunks = files, chunks }
