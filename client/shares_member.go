package client

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// Shared folders, the member's operations (accept, decline, leave) and the listing of shares.

// AcceptResult describes an accepted share.
type AcceptResult struct {
	Tree  coffer.TreeID
	Owner string
	Write bool
	Path  string // the mount folder in this account's tree
}

// findInvite returns the invite to tree addressed to this account.
func (c *Client) findInvite(ctx context.Context, id coffer.TreeID) (*api.InviteInfo, error) {
	var resp api.InvitesResponse
	if err := c.http.json(ctx, "GET", "/v1/invites", nil, &resp, true, false); err != nil {
		return nil, fmt.Errorf("client: invites: %w", err)
	}
	for i := range resp.Invites {
		if resp.Invites[i].Tree == id {
			return &resp.Invites[i], nil
		}
	}
	return nil, fmt.Errorf("client: no invite to shared folder %v: %w", id, coffer.ErrNotFound)
}

// parseShareID parses a share (invite) ID: the shared tree's ID in hex.
func parseShareID(id string) (coffer.TreeID, error) {
	t, err := coffer.ParseTreeID(strings.TrimSpace(id))
	if err != nil {
		return t, fmt.Errorf("client: share ID %q: a share ID is 32 hex digits (see 'share ls'): %w", id, coffer.ErrInvalid)
	}
	return t, nil
}

// AcceptShare accepts the invite to the shared folder id (as listed by Shares) and mounts it
// in this account's tree: at as if not empty (its parent must exist, the name must be free),
// else at "/<folder name>" (with " (2)", " (3)"... on a collision).
//
// The invite is verified before anything changes (FORMAT.md §12.2): addressed to this account
// and its KEM key, signed by the owner with the keys this device trusts for them (pinned on
// first sight; a changed key is a *KeyChangedError), its tree key opening, and the roster served
// with it signed by the same key and listing this account with the invite's role and epoch.
// If the bundle already holds the folder (accepted on another device), the sender must be the
// owner its entry names. Accepting seals the sender into the bundle entry as the folder's owner:
// every device of the account checks the folder's rosters against it from then on.
func (c *Client) AcceptShare(ctx context.Context, id, as string) (*AcceptResult, error) {
	if c.share != nil || c.shares == nil {
		return nil, fmt.Errorf("client: accept: not an account client: %w", coffer.ErrInvalid)
	}
	tid, err := parseShareID(id)
	if err != nil {
		return nil, err
	}
	info, err := c.findInvite(ctx, tid)
	if err != nil {
		return nil, err
	}
	res := &AcceptResult{Tree: tid, Owner: info.OwnerUsername}
	if st := c.shares.get(tid); st == nil || info.Status != api.StatusAccepted {
		// Verified on a scratch handle; a tree the bundle holds already keeps its owner.
		sk, _ := c.shares.currentBundle().ShareOf(tid)
		tc := c.inTree(newSharedTree(format.ShareKey{Tree: tid, Owner: sk.Owner, OwnerKey: sk.OwnerKey}), "")
		tk, inv, _, err := tc.openInvite(ctx, info)
		if err != nil {
			return nil, err
		}
		if err := c.adoptKey(ctx, tid, tk, inv.Epoch, inv.Role, inv.Sender, inv.SenderKey); err != nil {
			return nil, err
		}
		req := api.InviteAcceptRequest{Epoch: inv.Epoch}
		if err := c.http.json(ctx, "POST", "/v1/invites/"+tid.String()+"/accept", &req, nil, false, false); err != nil {
			return nil, fmt.Errorf("client: accept %v: %w", tid, err)
		}
	}
	st := c.shares.get(tid)
	if st == nil {
		return nil, fmt.Errorf("client: accept %v: the key bundle lost the share: %w", tid, coffer.ErrConflict)
	}
	st.mu.Lock()
	res.Write = st.role == format.ShareWrite
	st.mu.Unlock()
	mounts, err := c.mounts(ctx)
	if err != nil {
		return nil, err
	}
	if p, ok := mounts[tid]; ok && as == "" {
		res.Path = p // accepted before: already mounted
		return res, nil
	}
	if res.Path, err = c.createMount(ctx, st, as); err != nil {
		return nil, err
	}
	return res, nil
}

// createMount creates a mount folder of st in the account tree (see AcceptShare for the path).
func (c *Client) createMount(ctx context.Context, st *sharedTree, as string) (string, error) {
	var name string
	if err := c.inTree(st, "/").withView(ctx, func(v *view) error {
		name = v.root.body.Name
		return nil
	}); err != nil {
		return "", err
	}
	if as != "" {
		clean, err := cleanRemote(as)
		if err != nil {
			return "", err
		}
		if tc, _, err := c.route(ctx, path.Dir(clean), false); err != nil {
			return "", err
		} else if tc != c {
			return "", fmt.Errorf("client: accept --as %s: inside a shared folder: %w", clean, coffer.ErrInvalid)
		}
		as = clean
	}
	var out string
	err := c.update(ctx, func(t *txn) error {
		dir, base := t.v.root, name
		dirPath := "/"
		if as != "" {
			loc, err := t.v.resolve(ctx, c, path.Dir(as))
			if err != nil {
				return err
			}
			if !loc.node.isDir() {
				return fmt.Errorf("client: accept --as %s: %s is not a folder: %w", as, loc.path, coffer.ErrNotFound)
			}
			dir, dirPath, base = loc.node, loc.path, path.Base(as)
		}
		f, err := t.v.list(ctx, c, dir, dirPath)
		if err != nil {
			return err
		}
		pick := base
		for i := 2; f.byName[pick] != nil; i++ {
			if as != "" {
				return fmt.Errorf("client: accept --as %s: %w", as, coffer.ErrExist)
			}
			if i > 1000 {
				return fmt.Errorf("client: accept: no free name for %q: %w", base, coffer.ErrExist)
			}
			pick = fmt.Sprintf("%s (%d)", base, i)
		}
		out = joinRemote(dirPath, pick)
		if err := checkNewName(out, pick); err != nil {
			return err
		}
		_, err = t.put(format.KindFolder, coffer.NewNodeID(), dir, nil, format.NewNodeKey(),
			&format.Body{Name: pick, MTime: time.Now().UnixNano(), Mode: 0o755, Mount: st.id})
		return err
	})
	return out, err
}

// DeclineShare declines a pending invite (nothing changes locally).
func (c *Client) DeclineShare(ctx context.Context, id string) error {
	tid, err := parseShareID(id)
	if err != nil {
		return err
	}
	if err := c.http.json(ctx, "POST", "/v1/invites/"+tid.String()+"/decline", nil, nil, false, false); err != nil {
		return fmt.Errorf("client: decline %v: %w", tid, err)
	}
	return nil
}

// LeaveShare leaves the shared folder mounted at p: the server drops this account's access,
// the mount folder is deleted and the folder's key removed from the bundle. The owner cannot
// leave its own folder (it revokes members instead).
func (c *Client) LeaveShare(ctx context.Context, p string) error {
	if c.share != nil || c.shares == nil {
		return fmt.Errorf("client: leave: not an account client: %w", coffer.ErrInvalid)
	}
	loc, err := c.shareTarget(ctx, p)
	if err != nil {
		return err
	}
	id := loc.node.body.Mount
	if id == (coffer.TreeID{}) {
		return fmt.Errorf("client: leave %s: not a shared folder: %w", loc.path, coffer.ErrInvalid)
	}
	if sk, ok := c.shares.currentBundle().ShareOf(id); ok && sk.Owner == c.account {
		return fmt.Errorf("client: leave %s: you own this shared folder: revoke its members instead: %w", loc.path, coffer.ErrInvalid)
	}
	err = c.http.json(ctx, "POST", "/v1/trees/"+id.String()+"/leave", nil, nil, false, false)
	if err != nil && !errors.Is(err, coffer.ErrNotFound) {
		return fmt.Errorf("client: leave %s: %w", loc.path, err)
	}
	err = c.update(ctx, func(t *txn) error {
		l, err := t.v.resolve(ctx, c, loc.path)
		if err != nil {
			return err
		}
		if l.node.body.Mount != id {
			return nil
		}
		f, err := t.v.list(ctx, c, l.node, l.path)
		if err != nil {
			return err
		}
		if len(f.children) > 0 {
			return fmt.Errorf("client: leave %s: the mount folder holds files of its own: %w", l.path, coffer.ErrConflict)
		}
		return t.tombstone(l.node)
	})
	if err != nil {
		return err
	}
	if c.shares.get(id) == nil {
		return nil
	}
	return c.updateBundle(ctx, func(b *format.Bundle) error {
		b.Shares = slices.DeleteFunc(b.Shares, func(s format.ShareKey) bool { return s.Tree == id })
		return nil
	})
}

// mounts returns the path of every mount in the account tree, by shared tree.
func (c *Client) mounts(ctx context.Context) (map[coffer.TreeID]string, error) {
	out := map[coffer.TreeID]string{}
	err := c.withView(ctx, func(v *view) error {
		clear(out)
		all, err := v.collect(ctx, c, &located{path: "/", node: v.root, parent: v.top})
		if err != nil {
			return err
		}
		for _, w := range all {
			if m := w.n.body.Mount; m != (coffer.TreeID{}) {
				if _, dup := out[m]; !dup {
					out[m] = w.e.Path
				}
			}
		}
		return nil
	})
	return out, err
}

// ShareMember is one member of a shared folder as Shares lists it.
type ShareMember struct {
	Username string           `json:"username"`
	Account  coffer.AccountID `json:"account"`
	Write    bool             `json:"write"`
	// Status: "invited", "accepted", "declined", "left" or "removed".
	Status string `json:"status"`
}

// OutgoingShare is a folder this account shares.
type OutgoingShare struct {
	ID      string        `json:"id"` // the shared tree's ID
	Path    string        `json:"path"`
	Epoch   uint32        `json:"epoch"`
	Members []ShareMember `json:"members"`
}

// IncomingShare is a folder another account shares with this one.
type IncomingShare struct {
	ID          string           `json:"id"` // pass it to AcceptShare / DeclineShare
	Owner       string           `json:"owner"`
	OwnerID     coffer.AccountID `json:"owner_account"`
	Write       bool             `json:"write"`
	Status      string           `json:"status"` // "invited", "accepted", "declined", "left", "removed"
	Fingerprint string           `json:"fingerprint,omitempty"`
	// KeyState compares the owner's served key with this device's pin: "verified",
	// "unverified" (pinned on first sight), "new" (not pinned yet: accepting pins it) or
	// "CHANGED" (accepting is refused until re-verified).
	KeyState string `json:"key_state,omitempty"`
	Path     string `json:"path,omitempty"` // the mount (accepted shares)
}

// ShareListing is the result of Shares.
type ShareListing struct {
	Outgoing []OutgoingShare `json:"outgoing"`
	Incoming []IncomingShare `json:"incoming"`
}

// Shares lists the folders this account shares (with their members' states) and the folders
// shared with it (pending invites with the owner's fingerprint state, and accepted ones with
// their mount path). Names and states come from the server and are informational; every key
// the operations use is verified when used.
func (c *Client) Shares(ctx context.Context) (*ShareListing, error) {
	if c.share != nil || c.shares == nil {
		return nil, fmt.Errorf("client: shares: not an account client: %w", coffer.ErrInvalid)
	}
	var sr api.SharesResponse
	if err := c.http.json(ctx, "GET", "/v1/shares", nil, &sr, true, false); err != nil {
		return nil, fmt.Errorf("client: shares: %w", err)
	}
	var ir api.InvitesResponse
	if err := c.http.json(ctx, "GET", "/v1/invites", nil, &ir, true, false); err != nil {
		return nil, fmt.Errorf("client: invites: %w", err)
	}
	mounts, err := c.mounts(ctx)
	if err != nil {
		return nil, err
	}
	contacts, err := c.loadContactsOrMemory()
	if err != nil {
		return nil, err
	}
	out := &ShareListing{Outgoing: []OutgoingShare{}, Incoming: []IncomingShare{}}
	for _, o := range sr.Outgoing {
		os := OutgoingShare{ID: o.Tree.String(), Path: mounts[o.Tree], Members: []ShareMember{}}
		if st := c.shares.get(o.Tree); st != nil {
			if r, err := c.inTree(st, os.Path).verifyRoster(ctx, o.Roster); err == nil {
				os.Epoch = r.Epoch
			} else {
				return nil, err
			}
		}
		for _, m := range o.Members {
			os.Members = append(os.Members, ShareMember{Username: m.Username, Account: m.Account,
				Write: m.Role == format.ShareWrite, Status: m.Status})
		}
		out.Outgoing = append(out.Outgoing, os)
	}
	invites := map[coffer.TreeID]*api.InviteInfo{}
	for i := range ir.Invites {
		invites[ir.Invites[i].Tree] = &ir.Invites[i]
	}
	for _, in := range sr.Incoming {
		is := IncomingShare{ID: in.Tree.String(), Owner: in.OwnerUsername, OwnerID: in.Owner,
			Write: in.Role == format.ShareWrite, Status: in.Status, Path: mounts[in.Tree]}
		if info := invites[in.Tree]; info != nil {
			if pk, err := format.ParsePublicKeys(info.OwnerPublicKeys); err == nil && pk.Account == in.Owner {
				is.Fingerprint = pk.Fingerprint()
				is.KeyState = "new"
				if ct, ok := contacts[pk.Username]; ok {
					switch {
					case ct.Fingerprint != is.Fingerprint || ct.Account != pk.Account:
						is.KeyState = "CHANGED"
					case ct.Verified:
						is.KeyState = "verified"
					default:
						is.KeyState = "unverified"
					}
				}
			}
		}
		out.Incoming = append(out.Incoming, is)
	}
	return out, nil
}

// PathShare describes the shared folder holding a remote path (see ShareOf).
type PathShare struct {
	ID    string // the shared tree's ID
	Mount string // the mount's path in this account
	Owner string // the owner's username ("" if this account owns it)
	Write bool   // this account may write it
}

// ShareOf returns the shared folder holding the remote path p, or nil when p is in the
// account's own tree. Content in a shared folder counts against its owner's quota.
func (c *Client) ShareOf(ctx context.Context, p string) (*PathShare, error) {
	tc, _, err := c.route(ctx, p, false)
	if err != nil || tc == c {
		return nil, err
	}
	r, resp, err := tc.fetchRoster(ctx)
	if err != nil {
		return nil, err
	}
	out := &PathShare{ID: tc.tree.String(), Mount: tc.rootPath(), Write: tc.checkWritable() == nil}
	if r.Owner != c.account {
		out.Owner = resp.OwnerUsername
		if m := r.Member(c.account); m != nil {
			out.Write = m.Role == format.ShareWrite && m.State == format.MemberActive
		}
	} else {
		out.Write = true
	}
	return out, nil
}

// HasShares reports whether the account holds any shared folder key (owned or accepted).
func (c *Client) HasShares() bool { return c.shares != nil && !c.shares.empty() }

// trashTree returns the Client value for the trash of the shared folder holding p ("": the
// account's own trash).
func (c *Client) trashTree(ctx context.Context, p string) (*Client, error) {
	if p == "" {
		return c, nil
	}
	tc, _, err := c.route(ctx, p, false)
	if err != nil {
		return nil, err
	}
	if tc == c {
		return nil, fmt.Errorf("client: trash of %s: not in a shared folder (the account's trash needs no path): %w", p, coffer.ErrInvalid)
	}
	return tc, nil
}

// TrashIn lists the trash of the shared folder holding p (its own trash: what members removed
// there). Paths are shown through the mount.
func (c *Client) TrashIn(ctx context.Context, p string) ([]*Entry, error) {
	tc, err := c.trashTree(ctx, p)
	if err != nil {
		return nil, err
	}
	return tc.Trash(ctx)
}

// RestoreTrashIn is RestoreTrash in the shared folder holding p; dst ("" for the original place)
// must be in the same shared folder.
func (c *Client) RestoreTrashIn(ctx context.Context, p, nameOrID, dst string) error {
	tc, err := c.trashTree(ctx, p)
	if err != nil {
		return err
	}
	if dst != "" {
		td, rel, err := c.route(ctx, dst, false)
		if err != nil {
			return err
		}
		if !td.sameTree(tc) {
			return fmt.Errorf("client: restore to %s: not in the same shared folder: %w", dst, coffer.ErrInvalid)
		}
		dst = rel
	}
	return tc.RestoreTrash(ctx, nameOrID, dst)
}

// EmptyTrashIn is EmptyTrash for the shared folder holding p (writers only).
func (c *Client) EmptyTrashIn(ctx context.Context, p string) (int, error) {
	tc, err := c.trashTree(ctx, p)
	if err != nil {
		return 0, err
	}
	return tc.EmptyTrash(ctx)
}
