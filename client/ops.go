package client

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"coffer"
	"coffer/format"
)

// Mkdir creates a folder; with parents, missing ancestors too and an existing folder is not an error.
func (c *Client) Mkdir(ctx context.Context, p string, parents bool) (*Entry, error) {
	if tc, rel, err := c.route(ctx, p, false); err != nil || tc != c {
		if err != nil {
			return nil, err
		}
		return tc.Mkdir(ctx, rel, parents)
	}
	elems, err := splitRemote(p)
	if err != nil {
		return nil, err
	}
	var out *Entry
	err = c.update(ctx, func(t *txn) error {
		v := t.v
		cur, curPath := v.root, c.rootPath()
		if len(elems) == 0 && !parents {
			return fmt.Errorf("client: mkdir /: %w", coffer.ErrExist)
		}
		for i, e := range elems {
			p := joinRemote(curPath, e)
			last := i == len(elems)-1
			var child *node
			if !t.fresh[cur.id()] {
				f, err := v.list(ctx, c, cur, curPath)
				if err != nil {
					return err
				}
				child = f.byName[e]
			}
			if child != nil {
				if !child.isDir() {
					return fmt.Errorf("client: mkdir %s: a file of that name exists: %w", p, coffer.ErrExist)
				}
				if last && !parents {
					return fmt.Errorf("client: mkdir %s: %w", p, coffer.ErrExist)
				}
				cur, curPath = child, p
				continue
			}
			if !last && !parents {
				return fmt.Errorf("client: mkdir %s: parent %s does not exist: %w", p, p, coffer.ErrNotFound)
			}
			if err := checkNewName(p, e); err != nil {
				return err
			}
			n, err := t.put(format.KindFolder, coffer.NewNodeID(), cur, nil, format.NewNodeKey(),
				&format.Body{Name: e, MTime: time.Now().UnixNano(), Mode: 0o755})
			if err != nil {
				return err
			}
			cur, curPath = n, p
		}
		out = entryOf(curPath, cur)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// destination resolves a mv/cp-style target: an existing folder receives the source under its
// own name; otherwise dst names the new entry inside its (existing) parent folder. It returns the
// folder, the name, the folder's path and its chain from the root.
func (v *view) destination(ctx context.Context, c *Client, dst, srcName string) (*located, string, error) {
	d, err := v.resolve(ctx, c, dst)
	switch {
	case err == nil && d.node.isDir():
		return d, srcName, nil
	case err == nil:
		return d, "", fmt.Errorf("client: %s: %w", d.path, coffer.ErrExist)
	case !errors.Is(err, coffer.ErrNotFound):
		return nil, "", err
	}
	clean, err := cleanRemote(dst)
	if err != nil {
		return nil, "", err
	}
	pl, err := v.resolve(ctx, c, path.Dir(clean))
	if err != nil {
		return nil, "", err
	}
	if !pl.node.isDir() {
		return nil, "", fmt.Errorf("client: %s: %s is not a folder: %w", clean, pl.path, coffer.ErrNotFound)
	}
	return pl, path.Base(clean), nil
}

// relocate stages n's next version under folder dir with a new name (and trash origin).
func (t *txn) relocate(ctx context.Context, n *node, dir *located, name string, origin coffer.NodeID) error {
	p := joinRemote(dir.path, name)
	for _, a := range dir.chain {
		if a.id() == n.id() {
			return fmt.Errorf("client: move into %s: a folder cannot move into itself: %w", p, coffer.ErrInvalid)
		}
	}
	f, err := t.v.list(ctx, t.c, dir.node, dir.path)
	if err != nil {
		return err
	}
	if ex := f.byName[name]; ex != nil && ex.id() != n.id() && !f.trash {
		return fmt.Errorf("client: move to %s: %w", p, coffer.ErrExist)
	}
	if err := checkNewName(p, name); err != nil {
		return err
	}
	body := *n.body
	body.Name, body.TrashOrigin = name, origin
	_, err = t.put(n.rec.Kind, n.id(), dir.node, n, n.key, &body)
	return err
}

// Move renames or moves a file or folder (cp/mv semantics: into dst if dst is a folder). An
// existing destination is an error wrapping coffer.ErrExist; moving a folder into itself or a
// descendant wraps coffer.ErrInvalid.
func (c *Client) Move(ctx context.Context, src, dst string) error {
	if tc, rs, rd, err := c.routeMove(ctx, src, dst); err != nil || tc != c {
		if err != nil {
			return err
		}
		return tc.Move(ctx, rs, rd)
	}
	return c.update(ctx, func(t *txn) error {
		s, err := t.v.resolve(ctx, c, src)
		if err != nil {
			return err
		}
		if s.node == t.v.root {
			return fmt.Errorf("client: move /: the root cannot move: %w", coffer.ErrInvalid)
		}
		dir, name, err := t.v.destination(ctx, c, dst, s.node.body.Name)
		if err != nil {
			if dir != nil && dir.node.id() == s.node.id() {
				return nil // mv a a
			}
			return err
		}
		if dir.node.id() == s.node.rec.Parent && name == s.node.body.Name {
			return nil // already there
		}
		return t.relocate(ctx, s.node, dir, name, coffer.NodeID{})
	})
}

// Remove moves a node to the trash (the trash remembers where it came from).
func (c *Client) Remove(ctx context.Context, p string) error {
	if tc, rel, err := c.route(ctx, p, true); err != nil || tc != c {
		if err != nil {
			return err
		}
		return tc.Remove(ctx, rel)
	}
	return c.update(ctx, func(t *txn) error {
		s, err := t.v.resolve(ctx, c, p)
		if err != nil {
			return err
		}
		if s.node == t.v.root {
			return fmt.Errorf("client: rm /: the root cannot be removed: %w", coffer.ErrInvalid)
		}
		if s.node.body.Mount != (coffer.TreeID{}) {
			return fmt.Errorf("client: rm %s: this is a shared folder: use 'share leave' (or, as its owner, 'share revoke'): %w", s.path, coffer.ErrInvalid)
		}
		trash := &located{path: "trash", node: t.v.trash, chain: []*node{t.v.trash}}
		return t.relocate(ctx, s.node, trash, s.node.body.Name, s.node.rec.Parent)
	})
}

// findTrashed returns the trashed node named nameOrID (a name as Trash shows it, or a node ID).
func (v *view) findTrashed(ctx context.Context, c *Client, nameOrID string) (*node, error) {
	f, err := v.list(ctx, c, v.trash, "trash")
	if err != nil {
		return nil, err
	}
	if id, err := coffer.ParseNodeID(nameOrID); err == nil {
		for _, n := range f.children {
			if n.id() == id {
				return n, nil
			}
		}
	}
	var found *node
	for _, n := range f.children {
		if n.body.Name == nameOrID {
			if found != nil {
				return nil, fmt.Errorf("client: trash: several entries named %q, restore by ID: %w", nameOrID, coffer.ErrInvalid)
			}
			found = n
		}
	}
	if found == nil {
		return nil, fmt.Errorf("client: trash: %q: %w", nameOrID, coffer.ErrNotFound)
	}
	return found, nil
}

// RestoreTrash moves a trashed node (by name as shown in Trash, or node ID) back to where it was
// (or to dst if not empty). A name taken at the destination is an error wrapping coffer.ErrExist.
func (c *Client) RestoreTrash(ctx context.Context, nameOrID, dst string) error {
	return c.update(ctx, func(t *txn) error {
		n, err := t.v.findTrashed(ctx, c, nameOrID)
		if err != nil {
			return err
		}
		var dir *located
		name := n.body.Name
		if dst != "" {
			if dir, name, err = t.v.destination(ctx, c, dst, name); err != nil {
				return err
			}
		} else {
			p, on, err := t.v.folderPath(ctx, c, n.body.TrashOrigin)
			if errors.Is(err, errStale) {
				return err
			}
			if err != nil || n.body.TrashOrigin.IsZero() {
				return fmt.Errorf("client: restore %q: its original folder no longer exists, give a destination: %w", name, coffer.ErrNotFound)
			}
			loc, err := t.v.resolve(ctx, c, c.relPath(p))
			if err != nil {
				return err
			}
			if loc.node.id() != on.id() {
				return fmt.Errorf("client: restore %q: original folder moved during the restore: %w", name, errStale)
			}
			dir = loc
		}
		return t.relocate(ctx, n, dir, name, coffer.NodeID{})
	})
}

// EmptyTrash permanently deletes everything in the trash (signed tombstones, one commit) and
// returns the number of nodes deleted. Their blobs become collectable by the server's GC.
func (c *Client) EmptyTrash(ctx context.Context) (int, error) {
	count := 0
	err := c.update(ctx, func(t *txn) error {
		count = 0
		all, err := t.v.collect(ctx, c, &located{path: "trash", node: t.v.trash, parent: t.v.top})
		if err != nil {
			return err
		}
		for _, w := range all[1:] {
			if err := t.tombstone(w.n); err != nil {
				return err
			}
			count++
		}
		return nil
	})
	return count, err
}

// Version is one kept version of a file.
type Version struct {
	Version uint64
	Size    int64
	MTime   time.Time
	Hash    [32]byte
	Current bool
}

// fileVersions returns the verified, decrypted versions of the node at p, newest first.
func (c *Client) fileVersions(ctx context.Context, v *view, p string) (*located, []*format.Record, []*format.Body, error) {
	loc, err := v.resolve(ctx, c, p)
	if err != nil {
		return nil, nil, nil, err
	}
	recs, err := c.versions(ctx, loc.node.id(), loc.path)
	if err != nil {
		return nil, nil, nil, err
	}
	if recs[0].Hash() != loc.node.hash {
		if recs[0].Version > loc.node.rec.Version {
			return nil, nil, nil, errStale
		}
		return nil, nil, nil, fmt.Errorf("client: versions of %s: the newest served version is not the current record: %w", loc.path, coffer.ErrAuth)
	}
	bodies := make([]*format.Body, len(recs))
	key := loc.node.key
	for i, r := range recs {
		if r.Kind != loc.node.rec.Kind {
			return nil, nil, nil, fmt.Errorf("client: versions of %s: version %d has another kind: %w", loc.path, r.Version, coffer.ErrAuth)
		}
		if bodies[i], err = r.OpenBody(key); err != nil {
			return nil, nil, nil, fmt.Errorf("client: versions of %s: %w", loc.path, err)
		}
		if pk := bodies[i].PreviousKey; pk != nil {
			key = *pk // a key rotation: older versions are under the previous node key
		}
	}
	return loc, recs, bodies, nil
}

// Versions lists a file's versions, newest first (verified signatures and prev-hash chain).
func (c *Client) Versions(ctx context.Context, p string) ([]Version, error) {
	if tc, rel, err := c.route(ctx, p, false); err != nil || tc != c {
		if err != nil {
			return nil, err
		}
		return tc.Versions(ctx, rel)
	}
	var out []Version
	err := c.withView(ctx, func(v *view) error {
		_, recs, bodies, err := c.fileVersions(ctx, v, p)
		if err != nil {
			return err
		}
		out = make([]Version, len(recs))
		for i, r := range recs {
			out[i] = Version{Version: r.Version, MTime: time.Unix(0, bodies[i].MTime), Current: i == 0}
			if ct := bodies[i].Content; ct != nil {
				out[i].Size, out[i].Hash = int64(ct.Size), ct.Hash
			}
		}
		return nil
	})
	return out, err
}

// RestoreVersion makes an older version current again (as a new version). The name and place
// stay as they are; content, mtime and mode come from the old version.
func (c *Client) RestoreVersion(ctx context.Context, p string, version uint64) error {
	if tc, rel, err := c.route(ctx, p, false); err != nil || tc != c {
		if err != nil {
			return err
		}
		return tc.RestoreVersion(ctx, rel, version)
	}
	return c.update(ctx, func(t *txn) error {
		loc, recs, bodies, err := c.fileVersions(ctx, t.v, p)
		if err != nil {
			return err
		}
		for i, r := range recs {
			if r.Version != version {
				continue
			}
			if i == 0 {
				return nil // already current
			}
			body := *loc.node.body
			body.Content, body.MTime, body.Mode = bodies[i].Content, bodies[i].MTime, bodies[i].Mode
			if len(loc.chain) < 2 {
				return fmt.Errorf("client: %s: the root has no versions to restore: %w", loc.path, coffer.ErrInvalid)
			}
			parent := loc.chain[len(loc.chain)-2]
			_, err := t.put(loc.node.rec.Kind, loc.node.id(), parent, loc.node, loc.node.key, &body)
			return err
		}
		return fmt.Errorf("client: %s: version %d: %w", loc.path, version, coffer.ErrNotFound)
	})
}
