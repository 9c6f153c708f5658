package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"coffer"
	"coffer/format"
)

// upDir is a remote folder an upload writes into.
type upDir struct {
	path   string
	name   string
	parent *upDir
	n      *node // the folder's node once it exists (existing, or created by the upload)
	exists bool  // existed before the upload
	id     coffer.NodeID
	key    format.NodeKey
	names  map[string]bool // names the upload writes into this folder
}

// upFile is one local file to upload.
type upFile struct {
	local  string
	remote string
	name   string
	dir    *upDir
	size   int64
	mtime  int64 // Unix nanoseconds
	mode   uint32
	id     coffer.NodeID // for a new node
	nk     format.NodeKey
	// replace is the remote node the plan found under the name (Overwrite).
	replace coffer.NodeID

	// Transfer state.
	key     format.ContentKey
	ciph    *format.ContentCipher
	chunks  []format.ChunkRef
	hash    [32]byte
	journal *upJournal
	tracker Tracker
	pre     *prefetch // small files: read ahead by a prefetch worker

	mu       sync.Mutex
	pending  int  // packs holding chunks of this file not yet acknowledged
	readDone bool // every chunk has been read and hashed
	sent     bool // handed to the committer
}

// upPlan is what an upload will do.
type upPlan struct {
	dirs     []*upDir // folders to create, parents first
	files    []*upFile
	folders  int
	skipped  int
	warnings []string
}

func (p *upPlan) warn(opts TransferOptions, msg string) {
	p.warnings = append(p.warnings, msg)
	if w, ok := opts.Progress.(Warner); ok {
		w.Warn(msg)
	}
}

// planUpload walks the local sources and decides, against one view, what goes where.
func (c *Client) planUpload(ctx context.Context, v *view, locals []string, remote string, opts TransferOptions) (*upPlan, error) {
	if len(locals) == 0 {
		return nil, fmt.Errorf("client: upload: no local sources: %w", coffer.ErrInvalid)
	}
	plan := &upPlan{}
	type target struct {
		dir  *upDir
		name string
	}
	var targets []target
	loc, err := v.resolve(ctx, c, remote)
	switch {
	case err == nil && loc.node.isDir():
		d := &upDir{path: loc.path, n: loc.node, exists: true, id: loc.node.id(), key: loc.node.key, names: map[string]bool{}}
		for _, l := range locals {
			targets = append(targets, target{d, filepath.Base(filepath.Clean(l))})
		}
	case err == nil:
		if len(locals) != 1 {
			return nil, fmt.Errorf("client: upload: %s is a file, not a folder: %w", loc.path, coffer.ErrExist)
		}
		parent := loc.chain[len(loc.chain)-2]
		d := &upDir{path: path.Dir(loc.path), n: parent, exists: true, id: parent.id(), key: parent.key, names: map[string]bool{}}
		targets = append(targets, target{d, loc.node.body.Name})
	case errors.Is(err, coffer.ErrNotFound):
		clean, _ := cleanRemote(remote)
		if len(locals) != 1 {
			return nil, fmt.Errorf("client: upload: folder %s does not exist: %w", clean, coffer.ErrNotFound)
		}
		pl, perr := v.resolve(ctx, c, path.Dir(clean))
		if perr != nil {
			return nil, perr
		}
		if !pl.node.isDir() {
			return nil, fmt.Errorf("client: upload: %s is not a folder: %w", pl.path, coffer.ErrNotFound)
		}
		d := &upDir{path: pl.path, n: pl.node, exists: true, id: pl.node.id(), key: pl.node.key, names: map[string]bool{}}
		targets = append(targets, target{d, path.Base(clean)})
	default:
		return nil, err
	}
	for i, l := range locals {
		if err := c.planEntry(ctx, v, plan, l, targets[i].dir, targets[i].name, opts); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// planEntry plans one local path written as name inside dir.
func (c *Client) planEntry(ctx context.Context, v *view, plan *upPlan, local string, dir *upDir, name string, opts TransferOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(local)
	if err != nil {
		return fmt.Errorf("client: upload: %w", err)
	}
	rp := joinRemote(dir.path, name)
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		plan.warn(opts, fmt.Sprintf("skipped symbolic link %s (links are not followed)", local))
		return nil
	case !fi.Mode().IsDir() && !fi.Mode().IsRegular():
		plan.warn(opts, fmt.Sprintf("skipped special file %s", local))
		return nil
	}
	if err := checkNewName(rp, name); err != nil {
		return err
	}
	if dir.names[name] {
		return fmt.Errorf("client: upload: two sources map to %s: %w", rp, coffer.ErrExist)
	}
	dir.names[name] = true
	var existing *node
	if dir.n != nil {
		f, err := v.list(ctx, c, dir.n, dir.path)
		if err != nil {
			return err
		}
		existing = f.byName[name]
	}
	if fi.IsDir() {
		plan.folders++
		d := &upDir{path: rp, name: name, parent: dir, names: map[string]bool{}}
		switch {
		case existing != nil && !existing.isDir():
			return fmt.Errorf("client: upload: %s exists and is a file: %w", rp, coffer.ErrExist)
		case existing != nil:
			d.n, d.exists, d.id, d.key = existing, true, existing.id(), existing.key
		default:
			d.id, d.key = coffer.NewNodeID(), format.NewNodeKey()
			plan.dirs = append(plan.dirs, d)
		}
		ents, err := os.ReadDir(local)
		if err != nil {
			return fmt.Errorf("client: upload: %w", err)
		}
		for _, e := range ents {
			if err := c.planEntry(ctx, v, plan, filepath.Join(local, e.Name()), d, e.Name(), opts); err != nil {
				return err
			}
		}
		return nil
	}
	f := &upFile{local: local, remote: rp, name: name, dir: dir, size: fi.Size(), mtime: fi.ModTime().UnixNano(),
		mode: uint32(fi.Mode().Perm()), id: coffer.NewNodeID(), nk: format.NewNodeKey()}
	if existing != nil {
		if existing.isDir() {
			return fmt.Errorf("client: upload: %s exists and is a folder: %w", rp, coffer.ErrExist)
		}
		ct := existing.body.Content
		if ct.Size == uint64(f.size) && existing.body.MTime == f.mtime {
			same, err := fileHashIs(local, ct.Hash)
			if err != nil {
				return err
			}
			if same {
				plan.skipped++
				return nil
			}
		}
		if !opts.Overwrite {
			return fmt.Errorf("client: upload: %s: %w", rp, coffer.ErrExist)
		}
		f.replace = existing.id()
	}
	plan.files = append(plan.files, f)
	return nil
}

// fileHashIs reports whether a local file's SHA-256 is want.
func fileHashIs(local string, want [32]byte) (bool, error) {
	fh, err := os.Open(local)
	if err != nil {
		return false, fmt.Errorf("client: upload: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return false, fmt.Errorf("client: upload: %w", err)
	}
	return [32]byte(h.Sum(nil)) == want, nil
}

// createDirs commits the plan's new folders (parents first) in one commit. A folder of the same
// name that appeared meanwhile is adopted. An upload with files does not call it: its first file
// commit creates the folders (stageDirs), so a folder and its first files appear atomically, in
// one commit.
func (c *Client) createDirs(ctx context.Context, dirs []*upDir) error {
	if len(dirs) == 0 {
		return nil
	}
	return c.update(ctx, func(t *txn) error { return c.stageDirs(ctx, t, dirs) })
}

// stageDirs stages the records of the plan's new folders (parents first) in t, adopting a folder
// of the same name that appeared meanwhile. It sets every dir's node for this attempt, so a
// rebuilt commit (update) stages them again from scratch.
func (c *Client) stageDirs(ctx context.Context, t *txn, dirs []*upDir) error {
	now := time.Now().UnixNano()
	for _, d := range dirs {
		d.n = nil
	}
	for _, d := range dirs {
		parent := d.parent.n
		if parent == nil {
			return fmt.Errorf("client: upload: %s: parent folder missing: %w", d.path, coffer.ErrNotFound)
		}
		if !t.fresh[parent.id()] {
			f, err := t.v.list(ctx, c, parent, d.parent.path)
			if err != nil {
				return err
			}
			if ex := f.byName[d.name]; ex != nil {
				if !ex.isDir() {
					return fmt.Errorf("client: upload: %s exists and is a file: %w", d.path, coffer.ErrExist)
				}
				d.n = ex
				continue
			}
		}
		n, err := t.put(format.KindFolder, d.id, parent, nil, d.key, &format.Body{Name: d.name, MTime: now, Mode: 0o755})
		if err != nil {
			return err
		}
		d.n = n
	}
	return nil
}
