package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"coffer"
	"coffer/format"
)

// Trees. An account owns one tree (its drive); every shared folder is a tree of its own (its own
// tree key, head, history and roster, doc/FORMAT.md §12), shown in an account tree through a
// mount: a folder whose body names the shared tree (Body.Mount) and which has no children of its
// own. Path resolution crosses at most one mount: route finds the tree holding a path and
// returns a Client value working on that tree (inTree), with the path relative to that tree's
// root. Everything per tree (tree ID, wrap key, cached verified view, who may write) lives in
// that value; the rest (session, keys, state) is shared.

// treeCache is the last verified view of one tree, shared by every Client value working on it.
type treeCache struct {
	mu    sync.Mutex
	cache *view // the last verified view of the tree (listings at one head)
	watch watch // chain, gossip and failure counters (forks.go, alert.go); under mu
}

// sharedTree is the account's handle on one shared folder: the tree key it holds (and the key's
// epoch), its role from the bundle, and the last verified roster. It is shared by every Client
// value working on the tree.
type sharedTree struct {
	id    coffer.TreeID
	views *treeCache

	mu        sync.Mutex
	key       format.TreeKey
	wrap      format.WrapKey
	epoch     uint32
	role      uint8          // format.ShareRead or ShareWrite (the bundle's; the roster decides)
	roster    *format.Roster // the last verified roster; nil until loaded
	rosterFor [32]byte       // hash of the head the roster was loaded for
	owner     bool           // this account owns the tree (known once the roster is loaded)
	// ownerAcct and ownerKey are the tree's owner as this account trusts it: the owner fields of
	// its bundle entry (FORMAT.md §5), zero only while an invite is verified for acceptance.
	// Every roster is checked against them, never against owner data the server serves.
	ownerAcct coffer.AccountID
	ownerKey  [32]byte
}

func newSharedTree(sk format.ShareKey) *sharedTree {
	return &sharedTree{id: sk.Tree, views: &treeCache{}, key: sk.Key, wrap: sk.Key.WrapKey(), epoch: sk.Epoch, role: sk.Role,
		ownerAcct: sk.Owner, ownerKey: sk.OwnerKey}
}

// trustedOwner returns the owner this account trusts for the tree (zero if none yet).
func (st *sharedTree) trustedOwner() (coffer.AccountID, [32]byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ownerAcct, st.ownerKey
}

// setOwner records the tree's trusted owner (from the bundle, or a verified invite being accepted).
func (st *sharedTree) setOwner(acct coffer.AccountID, key [32]byte) {
	st.mu.Lock()
	if st.ownerAcct != acct || st.ownerKey != key {
		st.ownerAcct, st.ownerKey = acct, key
		st.roster, st.rosterFor = nil, [32]byte{} // verified again with the next view
	}
	st.mu.Unlock()
}

// setKey installs a (newer) tree key; cached views opened with the old key are dropped.
func (st *sharedTree) setKey(key format.TreeKey, epoch uint32, role uint8) {
	st.mu.Lock()
	st.key, st.wrap, st.epoch, st.role = key, key.WrapKey(), epoch, role
	st.roster, st.rosterFor = nil, [32]byte{} // verified again with the next view
	st.mu.Unlock()
	st.views.mu.Lock()
	st.views.cache = nil
	st.views.mu.Unlock()
}

// forgetRoster makes the next view verify the roster again (it changed without a commit).
func (st *sharedTree) forgetRoster() {
	st.mu.Lock()
	st.rosterFor = [32]byte{}
	st.mu.Unlock()
}

func (st *sharedTree) wrapKey() format.WrapKey {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.wrap
}

// shareSet is the per-account sharing state shared by every Client value of a session: the
// current bundle (it changes when shares are added, accepted, left or re-keyed), the shared
// trees by ID (from the bundle's share entries), the local pins, and a count of HPKE seals
// (tests check: one per member, never one per file).
type shareSet struct {
	pins  *shareStore
	seals atomic.Int64

	mu     sync.Mutex
	bundle *format.Bundle
	trees  map[coffer.TreeID]*sharedTree
}

func newShareSet(b *format.Bundle, stateDir string, acct coffer.AccountID) (*shareSet, error) {
	pins, err := openShareStore(stateDir, acct)
	if err != nil {
		return nil, err
	}
	s := &shareSet{pins: pins, bundle: b, trees: map[coffer.TreeID]*sharedTree{}}
	for _, sk := range b.Shares {
		s.trees[sk.Tree] = newSharedTree(sk)
	}
	return s, nil
}

func (s *shareSet) get(id coffer.TreeID) *sharedTree {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trees[id]
}

func (s *shareSet) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.trees) == 0
}

// sync makes the set match the bundle's share entries: new entries are added, changed keys
// installed, removed entries dropped.
func (s *shareSet) sync(b *format.Bundle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[coffer.TreeID]bool{}
	for _, sk := range b.Shares {
		keep[sk.Tree] = true
		st := s.trees[sk.Tree]
		if st == nil {
			s.trees[sk.Tree] = newSharedTree(sk)
			continue
		}
		st.mu.Lock()
		same := st.key == sk.Key && st.epoch == sk.Epoch && st.role == sk.Role
		st.mu.Unlock()
		if !same {
			st.setKey(sk.Key, sk.Epoch, sk.Role)
		}
		st.setOwner(sk.Owner, sk.OwnerKey)
	}
	for id := range s.trees {
		if !keep[id] {
			delete(s.trees, id)
		}
	}
}

// inTree returns a Client value working on the shared tree st, whose root folder shows at the
// remote path base.
func (c *Client) inTree(st *sharedTree, base string) *Client {
	cc := *c
	cc.tree = st.id
	cc.treeWrap = format.WrapKey{} // shared trees read their key from st (it rotates)
	cc.treeCache = st.views
	cc.share = st
	cc.base = base
	return &cc
}

// topWrap is the key wrapping the node keys of the tree's top-level nodes.
func (c *Client) topWrap() format.WrapKey {
	if c.share != nil {
		return c.share.wrapKey()
	}
	return c.treeWrap
}

// rootPath is the remote path of this tree's root folder.
func (c *Client) rootPath() string {
	if c.base == "" {
		return "/"
	}
	return c.base
}

// relPath turns a remote path as shown (below rootPath) into a path relative to this tree's root.
func (c *Client) relPath(p string) string {
	if c.base == "" || c.base == "/" {
		return p
	}
	if p == c.base {
		return "/"
	}
	return strings.TrimPrefix(p, c.base)
}

// route finds the tree holding the remote path p. For a path at or below a mount of the account
// tree it returns a Client value working on the shared tree and p relative to that tree's root;
// otherwise c and p. With mountItself, a path naming a mount stays in the account tree (to rename
// or inspect the mount folder itself). Without shares, nothing is fetched.
func (c *Client) route(ctx context.Context, p string, mountItself bool) (*Client, string, error) {
	if c.share != nil || c.shares == nil || c.shares.empty() {
		return c, p, nil
	}
	elems, err := splitRemote(p)
	if err != nil || len(elems) == 0 {
		return c, p, err
	}
	out, rel := c, p
	err = c.withView(ctx, func(v *view) error {
		out, rel = c, p
		n, cur := v.root, "/"
		for i, e := range elems {
			if !n.isDir() {
				return nil // the operation reports it
			}
			f, err := v.list(ctx, c, n, cur)
			if err != nil {
				return err
			}
			ch := f.byName[e]
			if ch == nil {
				return nil
			}
			cur = joinRemote(cur, e)
			if m := ch.body.Mount; m != (coffer.TreeID{}) && ch.isDir() {
				if mountItself && i == len(elems)-1 {
					return nil
				}
				st := c.shares.get(m)
				if st == nil {
					return fmt.Errorf("client: %s: this account holds no key for the shared folder mounted there (left, or not accepted on this account): %w", cur, coffer.ErrNotFound)
				}
				out, rel = c.inTree(st, cur), "/"+strings.Join(elems[i+1:], "/")
				return nil
			}
			n = ch
		}
		return nil
	})
	return out, rel, err
}

// sameTree reports whether two Client values work on the same tree.
func (c *Client) sameTree(o *Client) bool { return c.tree == o.tree }

// rootName is the name an Entry shows for a tree's root folder at remote path p.
func rootName(p string) string { return path.Base(p) }

// authoriseHead checks that a head's writer may write the tree: the account's own key for its
// tree (and the owner's key for a link visit); for a shared folder the owner, an active member
// with the write role, or a removed writer for heads up to its last allowed version (roster).
func (c *Client) authoriseHead(h *format.Head) error {
	if c.share == nil {
		if h.Writer != c.signPub {
			return fmt.Errorf("head signed by a foreign key: %w", coffer.ErrAuth)
		}
		return nil
	}
	return c.share.authoriseHead(h)
}

// authorOK reports whether a live record's author may have written it: the head's writer rules
// for account trees and links; in a shared folder the owner or any member (active or removed)
// whose role is write. Readers never author anything.
func (c *Client) authorOK(author [32]byte) bool {
	if c.share == nil {
		return author == c.signPub
	}
	return c.share.authorOK(author)
}

// authorCheck returns the record-author rule for views of this tree (nil: the head's writer only).
func (c *Client) authorCheck() func([32]byte) bool {
	if c.share == nil {
		return nil
	}
	return c.share.authorOK
}

func (st *sharedTree) authoriseHead(h *format.Head) error {
	st.mu.Lock()
	r, forHead := st.roster, st.rosterFor
	st.mu.Unlock()
	if r != nil && r.MayWriteHead(h.Writer[:], h.Version) {
		return nil
	}
	if r == nil || forHead != h.Hash() {
		// The roster was loaded for another head (a listing raced a commit): start over on a
		// fresh view, which reloads the roster for the head it verifies.
		return errStale
	}
	return fmt.Errorf("head version %d of shared folder %v signed by a key that may not write it (reader, removed member or stranger): %w", h.Version, st.id, coffer.ErrAuth)
}

func (st *sharedTree) authorOK(author [32]byte) bool {
	st.mu.Lock()
	r := st.roster
	st.mu.Unlock()
	return r != nil && r.MayAuthor(author[:])
}

// routeWrite routes p like route and, for a shared folder, refuses early when this account may
// not write it (read-only share, stale key epoch), before anything is uploaded.
func (c *Client) routeWrite(ctx context.Context, p string) (*Client, string, error) {
	tc, rel, err := c.route(ctx, p, false)
	if err != nil || tc == c {
		return tc, rel, err
	}
	if err := tc.checkWritable(); err != nil {
		return nil, "", err
	}
	return tc, rel, nil
}

// routeMove routes both paths of a move; they must be in one tree (a mount itself, as a source,
// is a folder of the account tree).
func (c *Client) routeMove(ctx context.Context, src, dst string) (*Client, string, string, error) {
	ts, rs, err := c.route(ctx, src, true)
	if err != nil {
		return nil, "", "", err
	}
	td, rd, err := c.route(ctx, dst, false)
	if err != nil {
		return nil, "", "", err
	}
	if !ts.sameTree(td) {
		return nil, "", "", fmt.Errorf("client: move %s to %s: source and destination are in different trees (a shared folder and elsewhere): copy with get and put, then remove: %w", src, dst, coffer.ErrInvalid)
	}
	return ts, rs, rd, nil
}

// routeEach routes several paths. It returns nil slices when every path stays in c.
func (c *Client) routeEach(ctx context.Context, ps []string) ([]*Client, []string, error) {
	if c.share != nil || c.shares == nil || c.shares.empty() {
		return nil, nil, nil
	}
	tcs, rels := make([]*Client, len(ps)), make([]string, len(ps))
	moved := false
	for i, p := range ps {
		tc, rel, err := c.route(ctx, p, false)
		if err != nil {
			return nil, nil, err
		}
		tcs[i], rels[i] = tc, rel
		moved = moved || tc != c
	}
	if !moved {
		return nil, nil, nil
	}
	return tcs, rels, nil
}

// downloadEach downloads routed remotes: in one call when they share a tree, else one by one
// (several remotes go into the existing folder local, as Download requires).
// A mount given as a remote (its root) lands in an existing local folder under the mount's name,
// like any folder.
func downloadEach(ctx context.Context, tcs []*Client, rels []string, local string, opts TransferOptions) (TransferResult, error) {
	fi, err := os.Stat(local)
	into := err == nil && fi.IsDir()
	same := true
	for i, tc := range tcs {
		same = same && tc.sameTree(tcs[0]) && !(into && tc.share != nil && rels[i] == "/")
	}
	if same {
		return tcs[0].Download(ctx, rels, local, opts)
	}
	var total TransferResult
	for i, tc := range tcs {
		dst := local
		if into && tc.share != nil && rels[i] == "/" {
			dst = filepath.Join(local, path.Base(tc.rootPath()))
		}
		r, err := tc.Download(ctx, rels[i:i+1], dst, opts)
		total.Files += r.Files
		total.Folders += r.Folders
		total.Bytes += r.Bytes
		total.Skipped += r.Skipped
		total.Warnings = append(total.Warnings, r.Warnings...)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// blobPath is the URL path of a blob read from this tree (shared trees: scoped to the tree, so
// the server checks the caller may read it).
func (c *Client) blobPath(id coffer.BlobID) string {
	if c.share != nil {
		return "/v1/trees/" + c.tree.String() + "/blobs/" + id.String()
	}
	return "/v1/blobs/" + id.String()
}

// blobCheckPath is the URL path asking which blobs the server still stores for this tree.
func (c *Client) blobCheckPath() string {
	if c.share != nil {
		return "/v1/trees/" + c.tree.String() + "/blobs/check"
	}
	return "/v1/blobs/check"
}

// mountBelow is a shared folder mounted below the remotes of a download, and the local folder
// its content goes to.
type mountBelow struct {
	tc    *Client
	local string
}

// noMountsKey marks a context whose account-tree download must not expand mounts again.
type noMountsKey struct{}

// mountsBelow finds the mounts inside the folders a download of remotes (all in this account
// tree) copies, with their local destinations; nil without shares.
func (c *Client) mountsBelow(ctx context.Context, remotes []string, local string) ([]mountBelow, error) {
	if c.share != nil || c.shares == nil || c.shares.empty() || ctx.Value(noMountsKey{}) != nil {
		return nil, nil
	}
	fi, err := os.Stat(local)
	into := err == nil && fi.IsDir()
	var out []mountBelow
	err = c.withView(ctx, func(v *view) error {
		out = nil
		for _, r := range remotes {
			loc, err := v.resolve(ctx, c, r)
			if err != nil {
				return err
			}
			target := local
			if into && loc.node != v.root {
				target = filepath.Join(local, loc.node.body.Name)
			}
			all, err := v.collect(ctx, c, loc)
			if err != nil {
				return err
			}
			for _, w := range all[1:] {
				st := c.shares.get(w.n.body.Mount)
				if w.n.body.Mount == (coffer.TreeID{}) || st == nil {
					continue
				}
				lp, err := safeLocalJoin(target, w.rel)
				if err != nil {
					return fmt.Errorf("client: download %s: %w", w.e.Path, err)
				}
				out = append(out, mountBelow{tc: c.inTree(st, w.e.Path), local: lp})
			}
		}
		return nil
	})
	return out, err
}

// downloadWithMounts downloads remotes from the account tree (mount folders arrive empty), then
// each mounted shared folder into its folder. A shared folder this account can no longer read
// is skipped with a warning.
func (c *Client) downloadWithMounts(ctx context.Context, remotes []string, local string, opts TransferOptions, mounts []mountBelow) (TransferResult, error) {
	total, err := c.Download(context.WithValue(ctx, noMountsKey{}, true), remotes, local, opts)
	if err != nil {
		return total, err
	}
	for _, m := range mounts {
		r, err := m.tc.Download(ctx, []string{"/"}, m.local, opts)
		if errors.Is(err, coffer.ErrNotFound) || errors.Is(err, coffer.ErrForbidden) {
			msg := fmt.Sprintf("skipped shared folder %s: %v", m.tc.rootPath(), err)
			total.Warnings = append(total.Warnings, msg)
			if w, ok := opts.Progress.(Warner); ok {
				w.Warn(msg)
			}
			continue
		}
		total.Files += r.Files
		total.Folders += r.Folders
		total.Bytes += r.Bytes
		total.Skipped += r.Skipped
		total.Warnings = append(total.Warnings, r.Warnings...)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
