package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/tree"
)

// Shared folders, the owner's operations: Share (convert a folder into a shared tree and invite
// a member) and Revoke (remove a member and rotate the folder's keys). The member's operations
// are in shares_member.go; verification (rosters, keys, epochs) in sharesrv.go.

// ErrUnverifiedContact refuses to share to a contact whose fingerprint the user has not
// compared out of band (Share without ShareOptions.Unverified). It wraps coffer.ErrForbidden.
var ErrUnverifiedContact = fmt.Errorf("contact not verified: %w", coffer.ErrForbidden)

// ShareOptions tune Share.
type ShareOptions struct {
	// Write lets the member change the folder (else read only).
	Write bool
	// Unverified allows sharing to a contact whose fingerprint was not verified (the key was
	// only pinned on first sight: a malicious server could have substituted it).
	Unverified bool
}

// ShareResult describes what Share did.
type ShareResult struct {
	Path      string
	Tree      coffer.TreeID
	Member    string
	Write     bool
	Verified  bool // the member's key was fingerprint-verified
	Converted bool // the folder became a shared folder (its own tree) in this call
	Already   bool // the member already had this role: nothing changed
	Seals     int  // HPKE seals this call made (one per invite)
}

func roleOf(write bool) uint8 {
	if write {
		return format.ShareWrite
	}
	return format.ShareRead
}

// Share shares the folder at p with username: read-only, or read-write with opts.Write.
//
// The member's public keys must be a pinned contact whose fingerprint was verified
// (VerifyContact), else ErrUnverifiedContact unless opts.Unverified; a key that changed since it
// was pinned is a *KeyChangedError. The first share of a folder converts it: a new tree (random
// tree key, epoch 1) gets a copy of the folder's subtree (same node keys and contents, nothing
// re-uploaded), the folder becomes a mount of that tree and its old descendants are deleted. The
// conversion spans two trees, so it is not atomic; its steps are ordered so that re-running the
// same command after an interruption finishes it (the mount record, committed first, names the
// new tree). The member gets an invite carrying the tree key sealed to its KEM key: one HPKE
// seal per member, whatever the folder holds.
func (c *Client) Share(ctx context.Context, p, username string, opts ShareOptions) (*ShareResult, error) {
	if c.share != nil || c.shares == nil {
		return nil, fmt.Errorf("client: share: not an account client: %w", coffer.ErrInvalid)
	}
	if username == c.username {
		return nil, fmt.Errorf("client: share %s: that is you: %w", p, coffer.ErrInvalid)
	}
	ct, err := c.Contact(ctx, username)
	if err != nil {
		return nil, err
	}
	if !ct.Verified && !opts.Unverified {
		return nil, fmt.Errorf("client: share %s with %s: %s's key was pinned on first sight but its fingerprint was not compared: "+
			"check 'coffer contact fingerprint %s' with them and run 'coffer contact verify %s FINGERPRINT' (or share with --unverified): %w",
			p, username, username, username, username, ErrUnverifiedContact)
	}
	pk, err := format.ParsePublicKeys(ct.PublicKeys)
	if err != nil {
		return nil, fmt.Errorf("client: share: %s's pinned keys: %w", username, err)
	}
	loc, err := c.shareTarget(ctx, p)
	if err != nil {
		return nil, err
	}
	start := c.shares.seals.Load()
	res := &ShareResult{Path: loc.path, Member: username, Write: opts.Write, Verified: ct.Verified}
	id := loc.node.body.Mount
	if id == (coffer.TreeID{}) {
		if id, err = c.startConversion(ctx, loc.path, loc.node.id()); err != nil {
			return nil, err
		}
		res.Converted = true
	}
	res.Tree = id
	st := c.shares.get(id)
	if st == nil {
		return nil, fmt.Errorf("client: share %s: this account holds no key for the shared folder mounted there: %w", loc.path, coffer.ErrNotFound)
	}
	tc := c.inTree(st, loc.path)
	var copied map[coffer.NodeID]bool
	r, _, err := tc.fetchRoster(ctx)
	switch {
	case errors.Is(err, coffer.ErrNotFound):
		// Mounted but not created: (continue) the conversion, with the member in the first roster.
		if copied, err = c.createShared(ctx, st, loc.path, pk, opts.Write); err != nil {
			return nil, err
		}
		res.Converted = true
	case err != nil:
		return nil, err
	default:
		if r.Owner != c.account {
			return nil, fmt.Errorf("client: share %s: only the folder's owner can share it: %w", loc.path, coffer.ErrForbidden)
		}
		if res.Already, err = tc.addMember(ctx, pk, opts.Write); err != nil {
			return nil, err
		}
	}
	if err := c.finishConversion(ctx, loc.path, id, copied); err != nil {
		return nil, err
	}
	res.Seals = int(c.shares.seals.Load() - start)
	return res, nil
}

// shareTarget resolves the folder to share in the account tree: a folder (not the root, not
// inside a shared folder) or a mount of a shared folder.
func (c *Client) shareTarget(ctx context.Context, p string) (*located, error) {
	tc, _, err := c.route(ctx, p, true)
	if err != nil {
		return nil, err
	}
	if tc != c {
		return nil, fmt.Errorf("client: share %s: it is inside a shared folder (%s): share that folder instead: %w", p, tc.rootPath(), coffer.ErrInvalid)
	}
	var loc *located
	err = c.withView(ctx, func(v *view) error {
		var err error
		loc, err = v.resolve(ctx, c, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case !loc.node.isDir():
		return nil, fmt.Errorf("client: share %s: only folders can be shared (share its folder, or create a link): %w", loc.path, coffer.ErrInvalid)
	case len(loc.chain) < 2:
		return nil, fmt.Errorf("client: share /: the root folder cannot be shared: %w", coffer.ErrInvalid)
	}
	return loc, nil
}

// startConversion creates the key of a new shared tree (sealed into the bundle first, so the key
// is never lost) and turns the folder at p (node id) into a mount of it. Its descendants stay
// until finishConversion, so an interruption loses nothing.
func (c *Client) startConversion(ctx context.Context, p string, id coffer.NodeID) (coffer.TreeID, error) {
	tid := coffer.NewTreeID()
	if err := c.adoptKey(ctx, tid, format.NewTreeKey(), 1, format.ShareWrite, c.account, c.signPub); err != nil {
		return tid, err
	}
	err := c.update(ctx, func(t *txn) error {
		loc, err := t.v.resolve(ctx, c, p)
		if err != nil {
			return err
		}
		if loc.node.id() != id || !loc.node.isDir() || loc.node.body.Mount != (coffer.TreeID{}) || len(loc.chain) < 2 {
			return fmt.Errorf("client: share %s: the folder changed meanwhile, try again: %w", p, coffer.ErrConflict)
		}
		body := *loc.node.body
		body.Mount = tid
		_, err = t.put(format.KindFolder, id, loc.chain[len(loc.chain)-2], loc.node, loc.node.key, &body)
		return err
	})
	return tid, err
}

// createShared creates the shared tree mounted at p (whose account-tree folder still holds the
// subtree to copy): first commit (root, trash, the copied subtree), roster generation 1 with the
// first member, and that member's invite, in one request. It returns the copied node IDs.
func (c *Client) createShared(ctx context.Context, st *sharedTree, p string, member *format.PublicKeys, write bool) (map[coffer.NodeID]bool, error) {
	var all []walked
	err := c.withView(ctx, func(v *view) error {
		loc, err := v.resolve(ctx, c, p)
		if err != nil {
			return err
		}
		if loc.node.body.Mount != st.id {
			return fmt.Errorf("client: share %s: the folder is no longer a mount of this shared folder: %w", p, coffer.ErrConflict)
		}
		all, err = v.collect(ctx, c, loc)
		return err
	})
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	tk := st.key
	st.mu.Unlock()
	now := time.Now()
	rootID, rootKey := coffer.NewNodeID(), format.NewNodeKey()
	top := []struct {
		id   coffer.NodeID
		key  format.NodeKey
		body *format.Body
	}{
		{rootID, rootKey, &format.Body{Name: all[0].n.body.Name, MTime: now.UnixNano(), Mode: 0o755, Role: format.RoleRoot}},
		{coffer.NewNodeID(), format.NewNodeKey(), &format.Body{Name: "trash", MTime: now.UnixNano(), Mode: 0o755, Role: format.RoleTrash}},
	}
	specs := make([]rekeySpec, 0, len(all)+1)
	for _, t := range top {
		specs = append(specs, rekeySpec{kind: format.KindFolder, id: t.id, nk: t.key, wrap: tk.WrapKey(), body: t.body})
	}
	mountID := all[0].n.id()
	copied := make(map[coffer.NodeID]bool, len(all))
	for _, w := range all[1:] {
		if w.n.body.Mount != (coffer.TreeID{}) {
			return nil, fmt.Errorf("client: share %s: it contains a shared folder (%s): move that out first: %w", p, w.e.Path, coffer.ErrInvalid)
		}
		parent, wrap := w.n.rec.Parent, w.from.wrap
		if parent == mountID {
			parent, wrap = rootID, rootKey.WrapKey()
		}
		body := *w.n.body
		body.TrashOrigin = coffer.NodeID{}
		specs = append(specs, rekeySpec{kind: w.n.rec.Kind, id: w.n.id(), parent: parent, nk: w.n.key, wrap: wrap, body: &body})
		copied[w.n.id()] = true
	}
	recs, ops, err := c.sealSpecs(specs)
	if err != nil {
		return nil, err
	}
	res, err := tree.Apply(emptySource{}, ops)
	if err != nil {
		return nil, fmt.Errorf("client: share %s: %w", p, err)
	}
	head := &format.Head{Tree: st.id, Version: 1, StateRoot: res.StateRoot, OpsHash: res.OpsHash, Time: now.UnixMilli()}
	head.Sign(c.signer)
	role := roleOf(write)
	r := &format.Roster{Tree: st.id, Owner: c.account, Generation: 1, Epoch: 1,
		Members: []format.Member{memberOf(member, role)}}
	if err := r.Sign(c.signer); err != nil {
		return nil, fmt.Errorf("client: share %s: %w", p, err)
	}
	inv, err := c.sealInvite(st.id, 1, role, tk, member)
	if err != nil {
		return nil, err
	}
	req := api.ShareCreateRequest{Tree: st.id, Roster: r.Marshal(), Invites: [][]byte{inv},
		Commit: api.CommitRequest{BaseVersion: 0, Head: head.Marshal(), Records: recs}}
	var resp api.CommitResponse
	if err := c.http.json(ctx, "POST", "/v1/trees", &req, &resp, false, false); err != nil {
		return nil, fmt.Errorf("client: share %s: create the shared folder: %w", p, err)
	}
	if err := c.state.rememberHead(head); err != nil {
		return nil, err
	}
	hash := sha256.Sum256(req.Roster)
	if err := c.shares.pins.update(st.id, func(p *sharePin) {
		p.Owner, p.OwnerKey = c.account, hexKey(c.signPub)
		if p.Generation < 1 {
			p.Generation, p.RosterHash = 1, hexKey(hash)
		}
	}); err != nil {
		return nil, err
	}
	return copied, nil
}

// memberOf is the roster entry of a (verified) public key record with role.
func memberOf(pk *format.PublicKeys, role uint8) format.Member {
	return format.Member{Account: pk.Account, Role: role, State: format.MemberActive,
		Signing: [32]byte(pk.Signing), KEMFingerprint: pk.KEMFingerprint()}
}

// sealInvite seals tk to member's KEM key (one HPKE seal, counted).
func (c *Client) sealInvite(tree coffer.TreeID, epoch uint32, role uint8, tk format.TreeKey, member *format.PublicKeys) ([]byte, error) {
	inv, err := format.SealInvite(tree, epoch, role, tk, c.bundle, member)
	if err != nil {
		return nil, fmt.Errorf("client: invite %s: %w", member.Username, err)
	}
	c.shares.seals.Add(1)
	return inv.Marshal(), nil
}

// addMember adds member to this Client's shared tree (roster generation + 1, invite with the
// current key). It reports whether the member already had the role.
func (c *Client) addMember(ctx context.Context, member *format.PublicKeys, write bool) (bool, error) {
	role := roleOf(write)
	for attempt := 0; attempt < 5; attempt++ {
		r, _, err := c.fetchRoster(ctx)
		if err != nil {
			return false, err
		}
		st := c.share
		st.mu.Lock()
		tk, epoch := st.key, st.epoch
		st.mu.Unlock()
		if r.Epoch != epoch {
			if err := c.catchUpEpoch(ctx, r); err != nil {
				return false, err
			}
			continue
		}
		nr := *r
		nr.Generation++
		nr.Members = append([]format.Member(nil), r.Members...)
		if m := nr.Member(member.Account); m != nil {
			switch {
			case m.State == format.MemberActive && m.Role == role:
				return true, nil
			case m.Role == format.ShareWrite && role == format.ShareRead:
				return false, fmt.Errorf("client: share %s with %s: already a member with write access; changing a writer into a reader is not supported (revoke, then share anew is not possible either: keep them writer or revoke): %w", c.rootPath(), member.Username, coffer.ErrInvalid)
			case m.Signing != [32]byte(member.Signing) || m.KEMFingerprint != member.KEMFingerprint():
				return false, fmt.Errorf("client: share %s with %s: the roster lists other keys for them than their pinned keys: %w", c.rootPath(), member.Username, coffer.ErrAuth)
			}
			m.Role, m.State, m.Until = role, format.MemberActive, 0
		} else {
			nr.Members = append(nr.Members, memberOf(member, role))
			nr.SortMembers()
		}
		if err := nr.Sign(c.signer); err != nil {
			return false, fmt.Errorf("client: share %s: %w", c.rootPath(), err)
		}
		inv, err := c.sealInvite(st.id, nr.Epoch, role, tk, member)
		if err != nil {
			return false, err
		}
		req := api.RosterUpdateRequest{Roster: nr.Marshal(), Invites: [][]byte{inv}}
		var resp api.RosterUpdateResponse
		err = c.http.json(ctx, "POST", "/v1/trees/"+st.id.String()+"/roster", &req, &resp, false, false)
		if errors.Is(err, coffer.ErrConflict) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("client: share %s: roster: %w", c.rootPath(), err)
		}
		st.forgetRoster()
		return false, nil
	}
	return false, fmt.Errorf("client: share %s: the roster keeps changing: %w", c.rootPath(), coffer.ErrConflict)
}

// finishConversion deletes, in the account tree, what is left below the mount at p once the
// shared tree holds it. copied lists the node IDs the shared tree got (nil: read them from it).
// A node the shared tree lacks (added through a stale device meanwhile) is never deleted: the
// error names it.
func (c *Client) finishConversion(ctx context.Context, p string, id coffer.TreeID, copied map[coffer.NodeID]bool) error {
	return c.update(ctx, func(t *txn) error {
		loc, err := t.v.resolve(ctx, c, p)
		if err != nil {
			return err
		}
		if loc.node.body.Mount != id {
			return nil
		}
		all, err := t.v.collect(ctx, c, loc)
		if err != nil || len(all) < 2 {
			return err
		}
		if copied == nil {
			if copied, err = c.treeNodes(ctx, id, p); err != nil {
				return err
			}
		}
		for _, w := range all[1:] {
			if !copied[w.n.id()] {
				return fmt.Errorf("client: share %s: %s is not in the shared folder (added during the conversion): move it out of the folder and re-run: %w", p, w.e.Path, coffer.ErrConflict)
			}
		}
		for _, w := range all[1:] {
			if err := t.tombstone(w.n); err != nil {
				return err
			}
		}
		return nil
	})
}

// treeNodes returns the IDs of every live node of the shared tree id (mounted at p).
func (c *Client) treeNodes(ctx context.Context, id coffer.TreeID, p string) (map[coffer.NodeID]bool, error) {
	st := c.shares.get(id)
	if st == nil {
		return nil, fmt.Errorf("client: %s: no key for the shared folder: %w", p, coffer.ErrNotFound)
	}
	tc := c.inTree(st, p)
	out := map[coffer.NodeID]bool{}
	err := tc.withView(ctx, func(v *view) error {
		clear(out)
		for _, top := range []*node{v.root, v.trash} {
			all, err := v.collect(ctx, tc, &located{path: p, node: top, parent: v.top})
			if err != nil {
				return err
			}
			for _, w := range all {
				out[w.n.id()] = true
			}
		}
		return nil
	})
	return out, err
}

// rekeySpec is one record of a shared tree's first commit or of a key rotation.
type rekeySpec struct {
	kind    format.Kind
	id      coffer.NodeID
	parent  coffer.NodeID
	version uint64   // 0: a new node (version 1)
	prev    [32]byte // hash of the current record (rotation)
	nk      format.NodeKey
	wrap    format.WrapKey
	body    *format.Body
}

// sealSpecs seals records on every core and returns them with their commitment ops.
func (c *Client) sealSpecs(specs []rekeySpec) ([]api.CommitRecord, []tree.Op, error) {
	recs := make([]api.CommitRecord, len(specs))
	ops := make([]tree.Op, len(specs))
	errs := make([]error, len(specs))
	workers := min(runtime.GOMAXPROCS(0), len(specs)/64+1)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(specs); i += workers {
				s := specs[i]
				version := max(s.version, 1)
				rec, err := format.SealRecord(s.kind, s.id, s.parent, version, s.prev, s.nk, s.wrap, s.body, c.signer)
				if err != nil {
					errs[i] = fmt.Errorf("client: %w", err)
					continue
				}
				recs[i] = api.CommitRecord{Record: rec.Marshal(), Blobs: blobsOf(s.body.Content)}
				ops[i] = tree.Op{Node: s.id, Parent: s.parent, Hash: rec.Hash()}
				if s.version > 1 {
					ops[i].Existed, ops[i].OldParent = true, s.parent
				}
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return recs, ops, nil
}

// RevokeResult describes a revocation.
type RevokeResult struct {
	Path    string
	Member  string
	Epoch   uint32 // the new key epoch
	Nodes   int    // nodes re-keyed
	Members int    // remaining members re-invited with the new key
	Seals   int
}

// Revoke removes username from the shared folder mounted at p (owner only) and rotates its
// keys, in one atomic request: roster generation + 1 with the member removed (until = the
// current head version) and epoch + 1; every live node gets a new version with a fresh node key
// (the old one kept in the body's previous-key field, so the history stays readable to current
// members), wrapped under its parent's new key and a new tree key; contents are not re-uploaded;
// every remaining member gets an invite with the new tree key. Content written afterwards is
// unreadable with anything the removed member held. The new tree key is kept in the state
// directory until the bundle holds it, so an interruption never loses it.
func (c *Client) Revoke(ctx context.Context, p, username string) (*RevokeResult, error) {
	if c.share != nil || c.shares == nil {
		return nil, fmt.Errorf("client: revoke: not an account client: %w", coffer.ErrInvalid)
	}
	loc, err := c.shareTarget(ctx, p)
	if err != nil {
		return nil, err
	}
	id := loc.node.body.Mount
	st := c.shares.get(id)
	if id == (coffer.TreeID{}) || st == nil {
		return nil, fmt.Errorf("client: revoke %s: not a shared folder: %w", loc.path, coffer.ErrInvalid)
	}
	tc := c.inTree(st, loc.path)
	acct, err := c.memberAccount(ctx, tc, username)
	if err != nil {
		return nil, err
	}
	start := c.shares.seals.Load()
	for attempt := 0; attempt < 5; attempt++ {
		res, err := tc.rotate(ctx, acct)
		if errors.Is(err, errStale) || errors.Is(err, coffer.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		res.Member, res.Seals = username, int(c.shares.seals.Load()-start)
		return res, nil
	}
	return nil, fmt.Errorf("client: revoke %s: the shared folder keeps changing, try again: %w", loc.path, coffer.ErrConflict)
}

// memberAccount finds username's account: its pinned contact, else the server's member list
// (informational names; the roster's account is what gets removed).
func (c *Client) memberAccount(ctx context.Context, tc *Client, username string) (coffer.AccountID, error) {
	m, err := c.loadContactsOrMemory()
	if err != nil {
		return coffer.AccountID{}, err
	}
	if ct, ok := m[username]; ok {
		return ct.Account, nil
	}
	_, resp, err := tc.fetchRoster(ctx)
	if err != nil {
		return coffer.AccountID{}, err
	}
	for _, ms := range resp.Members {
		if ms.Username == username {
			return ms.Account, nil
		}
	}
	return coffer.AccountID{}, fmt.Errorf("client: revoke %s: %s is not a member: %w", tc.rootPath(), username, coffer.ErrNotFound)
}

// rotate builds and posts one revocation of acct from this Client's shared tree (see Revoke).
func (c *Client) rotate(ctx context.Context, acct coffer.AccountID) (*RevokeResult, error) {
	v, err := c.view(ctx)
	if err != nil {
		return nil, err
	}
	st := c.share
	st.mu.Lock()
	r, epoch := st.roster, st.epoch
	st.mu.Unlock()
	if r == nil || r.Owner != c.account {
		return nil, fmt.Errorf("client: revoke %s: only the folder's owner can revoke: %w", c.rootPath(), coffer.ErrForbidden)
	}
	if r.Epoch != epoch {
		return nil, fmt.Errorf("client: revoke %s: %w", c.rootPath(), ErrKeyRotated)
	}
	m := r.Member(acct)
	if m == nil || m.State != format.MemberActive {
		return nil, fmt.Errorf("client: revoke %s: not an active member: %w", c.rootPath(), coffer.ErrNotFound)
	}
	// Who still takes part: members who declined or left get no new key (an invite would invite
	// them again).
	cur, status, err := c.fetchRoster(ctx)
	if err != nil {
		return nil, err
	}
	if cur.Generation != r.Generation {
		st.forgetRoster()
		return nil, errStale
	}
	gone := map[coffer.AccountID]bool{}
	for _, ms := range status.Members {
		if ms.Status == api.StatusDeclined || ms.Status == api.StatusLeft {
			gone[ms.Account] = true
		}
	}
	// Every live node, parents first, gets a fresh node key.
	var all []walked
	for _, top := range []*node{v.root, v.trash} {
		ws, err := v.collect(ctx, c, &located{path: c.rootPath(), node: top, parent: v.top})
		if err != nil {
			return nil, err
		}
		all = append(all, ws...)
	}
	tk := format.NewTreeKey()
	newKeys := make(map[coffer.NodeID]format.NodeKey, len(all))
	specs := make([]rekeySpec, len(all))
	for i, w := range all {
		n := w.n
		nk := format.NewNodeKey()
		newKeys[n.id()] = nk
		wrap := tk.WrapKey()
		if !n.rec.Parent.IsZero() {
			pk, ok := newKeys[n.rec.Parent]
			if !ok {
				return nil, fmt.Errorf("client: revoke %s: parent of %s not re-keyed first: %w", c.rootPath(), w.e.Path, coffer.ErrConflict)
			}
			wrap = pk.WrapKey()
		}
		body := *n.body
		old := n.key
		body.PreviousKey = &old
		specs[i] = rekeySpec{kind: n.rec.Kind, id: n.id(), parent: n.rec.Parent, version: n.rec.Version + 1, prev: n.hash,
			nk: nk, wrap: wrap, body: &body}
	}
	recs, ops, err := c.sealSpecs(specs)
	if err != nil {
		return nil, err
	}
	res, err := tree.Apply(&viewSource{ctx: ctx, c: c, v: v, fresh: map[coffer.NodeID]bool{}}, ops)
	if err != nil {
		return nil, fmt.Errorf("client: revoke %s: %w", c.rootPath(), err)
	}
	h := &format.Head{Tree: st.id, Version: v.head.Version + 1, Prev: v.headHash, StateRoot: res.StateRoot,
		OpsHash: res.OpsHash, Time: max(time.Now().UnixMilli(), v.head.Time)}
	h.Sign(c.signer)
	nr := *r
	nr.Generation++
	nr.Epoch++
	nr.Members = append([]format.Member(nil), r.Members...)
	rm := nr.Member(acct)
	rm.State, rm.Until = format.MemberRemoved, v.head.Version
	if err := nr.Sign(c.signer); err != nil {
		return nil, fmt.Errorf("client: revoke %s: %w", c.rootPath(), err)
	}
	var invites [][]byte
	for i := range nr.Members {
		mm := &nr.Members[i]
		if mm.State != format.MemberActive || gone[mm.Account] {
			continue
		}
		pk, err := c.memberKeys(ctx, mm)
		if err != nil {
			return nil, err
		}
		inv, err := c.sealInvite(st.id, nr.Epoch, mm.Role, tk, pk)
		if err != nil {
			return nil, err
		}
		invites = append(invites, inv)
	}
	if err := c.shares.pins.update(st.id, func(p *sharePin) {
		p.PendingKey, p.PendingEpoch = hexKey(tk), nr.Epoch
	}); err != nil {
		return nil, err
	}
	req := api.RosterUpdateRequest{Roster: nr.Marshal(), Invites: invites,
		Commit: &api.CommitRequest{BaseVersion: v.head.Version, Head: h.Marshal(), Records: recs}}
	var resp api.RosterUpdateResponse
	if err := c.http.json(ctx, "POST", "/v1/trees/"+st.id.String()+"/roster", &req, &resp, false, false); err != nil {
		if errors.Is(err, coffer.ErrConflict) {
			return nil, errStale
		}
		return nil, fmt.Errorf("client: revoke %s: %w", c.rootPath(), err)
	}
	if err := c.state.rememberHead(h); err != nil {
		return nil, err
	}
	if err := c.adoptKey(ctx, st.id, tk, nr.Epoch, format.ShareWrite, c.account, c.signPub); err != nil {
		return nil, err
	}
	return &RevokeResult{Path: c.rootPath(), Epoch: nr.Epoch, Nodes: len(all), Members: len(invites)}, nil
}

// memberKeys fetches a roster member's public keys and checks them against the roster (which
// this device signed or verified): same account, identity key and KEM fingerprint.
func (c *Client) memberKeys(ctx context.Context, m *format.Member) (*format.PublicKeys, error) {
	var resp api.UserKeysResponse
	if err := c.http.json(ctx, "GET", "/v1/accounts/"+m.Account.String()+"/keys", nil, &resp, true, false); err != nil {
		return nil, fmt.Errorf("client: keys of member %v: %w", m.Account, err)
	}
	pk, err := format.ParsePublicKeys(resp.PublicKeys)
	if err != nil {
		return nil, fmt.Errorf("client: keys of member %v: %w", m.Account, err)
	}
	if pk.Account != m.Account || [32]byte(pk.Signing) != m.Signing || pk.KEMFingerprint() != m.KEMFingerprint {
		return nil, fmt.Errorf("client: keys of member %v: not the keys the roster lists: %w", m.Account, coffer.ErrAuth)
	}
	return pk, nil
}
