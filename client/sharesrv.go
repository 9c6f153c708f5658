package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// Shared folders, the verification side: rosters (who may write), the owner's trusted key,
// key epochs and re-key invites, and bundle updates. The operations are in shares.go.

var (
	// ErrReadOnly is a write to a shared folder this account may only read. It wraps
	// coffer.ErrForbidden.
	ErrReadOnly = fmt.Errorf("read-only shared folder: %w", coffer.ErrForbidden)
	// ErrKeyRotated means the owner rotated the shared folder's key (a member was removed) and
	// this account holds no key of the new epoch yet: it can neither read new content nor write.
	// It wraps coffer.ErrForbidden.
	ErrKeyRotated = fmt.Errorf("the shared folder's key was rotated and this account has no key of the new epoch (removed, or the owner's new key has not arrived): %w", coffer.ErrForbidden)
	// ErrNotMember means the roster no longer lists this account as an active member. It wraps
	// coffer.ErrForbidden.
	ErrNotMember = fmt.Errorf("this account is no longer a member of the shared folder: %w", coffer.ErrForbidden)
)

// currentBundle returns the newest bundle this session knows.
func (s *shareSet) currentBundle() *format.Bundle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundle
}

// setBundle installs a newer bundle and syncs the shared trees with its share entries.
func (s *shareSet) setBundle(b *format.Bundle) {
	s.mu.Lock()
	if s.bundle != nil && s.bundle.Generation >= b.Generation {
		s.mu.Unlock()
		return
	}
	s.bundle = b
	s.mu.Unlock()
	s.sync(b)
}

// updateBundle re-seals the bundle with mutate applied (generation + 1) and stores it; on a
// conflict (another device changed it) it re-reads the account's bundle and tries again.
func (c *Client) updateBundle(ctx context.Context, mutate func(b *format.Bundle) error) error {
	for attempt := 0; attempt < 5; attempt++ {
		cur := c.shares.currentBundle()
		nb := *cur
		nb.Shares = slices.Clone(cur.Shares)
		nb.Generation++
		if err := mutate(&nb); err != nil {
			return err
		}
		slices.SortFunc(nb.Shares, func(a, b format.ShareKey) int { return bytes.Compare(a.Tree[:], b.Tree[:]) })
		req := api.BundleUpdateRequest{Bundle: nb.Seal(c.mk), Generation: nb.Generation,
			PublicKeys: nb.PublicKeys(c.username).Marshal()}
		err := c.http.json(ctx, "PUT", "/v1/account/bundle", &req, nil, false, false)
		if errors.Is(err, coffer.ErrConflict) {
			if err := c.refreshBundle(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("client: update key bundle: %w", err)
		}
		if err := c.state.rememberBundleGeneration(nb.Generation); err != nil {
			return err
		}
		c.shares.setBundle(&nb)
		return nil
	}
	return fmt.Errorf("client: update key bundle: it keeps changing: %w", coffer.ErrConflict)
}

// refreshBundle re-reads and verifies the account's bundle (another device changed it).
func (c *Client) refreshBundle(ctx context.Context) error {
	var info api.AccountInfo
	if err := c.http.json(ctx, "GET", "/v1/account", nil, &info, true, false); err != nil {
		return fmt.Errorf("client: key bundle: %w", err)
	}
	b, err := format.OpenBundle(info.Bundle, c.mk, c.account)
	if err != nil {
		return fmt.Errorf("client: key bundle: %w", err)
	}
	if b.Generation != info.BundleGeneration || b.Tree != c.bundle.Tree || b.SigningSeed != c.bundle.SigningSeed {
		return fmt.Errorf("client: key bundle: the served bundle does not match this account: %w", coffer.ErrAuth)
	}
	if seen := c.state.bundleGeneration(); b.Generation < seen {
		return fmt.Errorf("client: key bundle generation %d is older than generation %d seen before: %w", b.Generation, seen, coffer.ErrRollback)
	}
	if err := c.state.rememberBundleGeneration(b.Generation); err != nil {
		return err
	}
	c.shares.setBundle(b)
	return nil
}

// trustedKeys returns the identity keys this device trusts for account acct: its own, or the
// pinned contact's. A first sight pins the keys the server serves for username (verified
// self-signature, the account they name), as contacts do; a pinned key that changed is a
// *KeyChangedError.
func (c *Client) trustedKeys(ctx context.Context, acct coffer.AccountID, username string) (*format.PublicKeys, error) {
	if acct == c.account {
		return c.pub, nil
	}
	m, err := c.loadContactsOrMemory()
	if err != nil {
		return nil, err
	}
	for _, ct := range m {
		if ct.Account == acct {
			return format.ParsePublicKeys(ct.PublicKeys)
		}
	}
	if username == "" {
		return nil, fmt.Errorf("client: no pinned keys for account %v: %w", acct, coffer.ErrNotFound)
	}
	ct, err := c.Contact(ctx, username)
	if err != nil {
		return nil, err
	}
	if ct.Account != acct {
		return nil, fmt.Errorf("client: the server names %q as the owner of account %v, but that user's pinned account is %v: %w", username, acct, ct.Account, coffer.ErrAuth)
	}
	return format.ParsePublicKeys(ct.PublicKeys)
}

// loadContactsOrMemory reads the pinned contacts; without a state directory there are none.
func (c *Client) loadContactsOrMemory() (map[string]*Contact, error) {
	if c.cfg.StateDir == "" {
		return map[string]*Contact{}, nil
	}
	return c.loadContacts()
}

// fetchRoster gets the tree's roster and verifies it: signature, tree, the owner's trusted key,
// no rollback below the pinned generation (nor another roster of the pinned generation), and
// this account's membership. It pins the roster.
func (c *Client) fetchRoster(ctx context.Context) (*format.Roster, *api.RosterResponse, error) {
	st := c.share
	var resp api.RosterResponse
	if err := c.http.json(ctx, "GET", "/v1/trees/"+st.id.String()+"/roster", nil, &resp, true, false); err != nil {
		if errors.Is(err, coffer.ErrNotFound) {
			return nil, nil, fmt.Errorf("client: shared folder %s: the server does not know it (a conversion not finished: re-run 'share' on it; or your access ended): %w", c.rootPath(), err)
		}
		return nil, nil, fmt.Errorf("client: shared folder %s: roster: %w", c.rootPath(), err)
	}
	r, err := c.verifyRoster(ctx, resp.Roster)
	if err != nil {
		return nil, nil, err
	}
	return r, &resp, nil
}

// verifyRoster checks roster bytes of this Client's shared tree (see fetchRoster) and pins them.
// The owner and owner key must be the ones this account's bundle entry for the tree names (or,
// while an invite is accepted, its verified sender): nothing the server serves about the owner
// (names, contacts) is trusted, so a member colluding with the server cannot pass off a roster
// naming itself owner, not even to a new device.
func (c *Client) verifyRoster(ctx context.Context, raw []byte) (*format.Roster, error) {
	st := c.share
	what := "shared folder " + c.rootPath()
	r, err := format.ParseRoster(raw)
	if err != nil {
		return nil, fmt.Errorf("client: %s: roster: %w", what, err)
	}
	if r.Tree != st.id {
		return nil, fmt.Errorf("client: %s: the roster of another tree: %w", what, coffer.ErrAuth)
	}
	pin := c.shares.pins.get(st.id)
	owner, ownerKey := st.trustedOwner()
	switch {
	case owner == (coffer.AccountID{}):
		return nil, fmt.Errorf("client: %s: this account's key bundle names no owner for the folder: %w", what, coffer.ErrAuth)
	case r.Owner != owner:
		return nil, fmt.Errorf("client: %s: the roster names account %v as owner, but this account's key bundle says the owner is %v: a forged roster: %w", what, r.Owner, owner, coffer.ErrAuth)
	}
	if err := r.CheckOwner(owner, ownerKey[:]); err != nil {
		return nil, fmt.Errorf("client: %s: roster not signed by the owner key recorded in this account's key bundle: %w", what, err)
	}
	hash := sha256.Sum256(raw)
	switch {
	case r.Generation < pin.Generation:
		return nil, fmt.Errorf("client: %s: roster generation %d is older than generation %d seen before: %w", what, r.Generation, pin.Generation, coffer.ErrRollback)
	case r.Generation == pin.Generation && pin.RosterHash != hexKey(hash):
		return nil, fmt.Errorf("client: %s: two different rosters of generation %d: %w", what, r.Generation, coffer.ErrAuth)
	}
	if r.Owner != c.account {
		m := r.Member(c.account)
		if m == nil || m.State != format.MemberActive {
			return nil, fmt.Errorf("client: %s: %w", what, ErrNotMember)
		}
		if m.Signing != c.signPub {
			return nil, fmt.Errorf("client: %s: the roster lists another identity key for this account: %w", what, coffer.ErrAuth)
		}
	}
	if err := c.shares.pins.update(st.id, func(p *sharePin) {
		if r.Generation >= p.Generation {
			p.Generation, p.RosterHash = r.Generation, hexKey(hash)
		}
		p.Owner, p.OwnerKey = r.Owner, hexKey(ownerKey)
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// loadRoster makes sure the shared tree's roster was verified for the head about to be
// verified (raw head bytes), and that this account holds the key of the roster's epoch
// (applying a pending re-key invite, or a rotation this device started). Account trees: no-op.
func (c *Client) loadRoster(ctx context.Context, headRaw []byte) error {
	st := c.share
	if st == nil {
		return nil
	}
	hash := sha256.Sum256(headRaw)
	st.mu.Lock()
	fresh := st.roster != nil && st.rosterFor == hash
	st.mu.Unlock()
	if fresh {
		return nil
	}
	r, _, err := c.fetchRoster(ctx)
	if err != nil {
		return err
	}
	st.mu.Lock()
	held := st.epoch
	st.mu.Unlock()
	switch {
	case r.Epoch < held:
		return fmt.Errorf("client: shared folder %s: roster epoch %d is older than the key epoch %d this account holds: %w", c.rootPath(), r.Epoch, held, coffer.ErrRollback)
	case r.Epoch > held:
		if err := c.catchUpEpoch(ctx, r); err != nil {
			return err
		}
		return errStale // the listing was read with the old key: start over
	}
	st.mu.Lock()
	st.roster, st.rosterFor, st.owner = r, hash, r.Owner == c.account
	st.mu.Unlock()
	return nil
}

// catchUpEpoch obtains the tree key of roster r's epoch: the owner's device adopts a rotation it
// started (pending key), a member applies its re-key invite. Else ErrKeyRotated.
func (c *Client) catchUpEpoch(ctx context.Context, r *format.Roster) error {
	st := c.share
	// Another device of this account may have sealed the new key into the bundle already.
	if err := c.refreshBundle(ctx); err != nil {
		return err
	}
	st.mu.Lock()
	held := st.epoch
	st.mu.Unlock()
	if held == r.Epoch {
		return nil
	}
	if r.Owner == c.account {
		pin := c.shares.pins.get(st.id)
		if pin.PendingEpoch != r.Epoch || len(hexBytes(pin.PendingKey)) != 32 {
			return fmt.Errorf("client: shared folder %s: %w", c.rootPath(), ErrKeyRotated)
		}
		return c.adoptKey(ctx, st.id, format.TreeKey(hexBytes(pin.PendingKey)), r.Epoch, format.ShareWrite, c.account, c.signPub)
	}
	n, err := c.applyRekeys(ctx)
	if err != nil {
		return err
	}
	st.mu.Lock()
	held = st.epoch
	st.mu.Unlock()
	if n == 0 || held != r.Epoch {
		return fmt.Errorf("client: shared folder %s: %w", c.rootPath(), ErrKeyRotated)
	}
	return nil
}

// adoptKey seals a tree key into the bundle (and clears a pending rotation key), with the
// tree's owner as this account trusts it (itself, or the verified sender of the accepted invite).
// A tree's entry never changes owner: a re-key naming another owner is refused.
func (c *Client) adoptKey(ctx context.Context, tree coffer.TreeID, key format.TreeKey, epoch uint32, role uint8, owner coffer.AccountID, ownerKey [32]byte) error {
	sk := format.ShareKey{Tree: tree, Key: key, Role: role, Epoch: epoch, Owner: owner, OwnerKey: ownerKey}
	err := c.updateBundle(ctx, func(b *format.Bundle) error {
		for i := range b.Shares {
			if b.Shares[i].Tree == tree {
				if b.Shares[i].Epoch > epoch {
					return fmt.Errorf("client: shared folder %v: the bundle holds a newer key (epoch %d > %d): %w", tree, b.Shares[i].Epoch, epoch, coffer.ErrConflict)
				}
				if b.Shares[i].Owner != owner || b.Shares[i].OwnerKey != ownerKey {
					return fmt.Errorf("client: shared folder %v: a key from another owner than the one in the key bundle: %w", tree, coffer.ErrAuth)
				}
				b.Shares[i] = sk
				return nil
			}
		}
		b.Shares = append(b.Shares, sk)
		return nil
	})
	if err != nil {
		return err
	}
	return c.shares.pins.update(tree, func(p *sharePin) {
		if p.PendingEpoch <= epoch {
			p.PendingKey, p.PendingEpoch = "", 0
		}
	})
}

// applyRekeys applies every re-key invite of trees this account already accepted: an invite of
// a newer epoch than the key held, signed by the tree's trusted owner, addressed to this
// account, for the role and epoch of the tree's verified roster. It returns how many it applied.
func (c *Client) applyRekeys(ctx context.Context) (int, error) {
	var resp api.InvitesResponse
	if err := c.http.json(ctx, "GET", "/v1/invites", nil, &resp, true, false); err != nil {
		return 0, fmt.Errorf("client: invites: %w", err)
	}
	n := 0
	for _, info := range resp.Invites {
		st := c.shares.get(info.Tree)
		if st == nil || info.Status != api.StatusAccepted {
			continue
		}
		st.mu.Lock()
		held := st.epoch
		st.mu.Unlock()
		if info.Epoch <= held {
			continue
		}
		tc := c.inTree(st, "")
		tk, inv, r, err := tc.openInvite(ctx, &info)
		if err != nil {
			return n, err
		}
		if inv.Epoch <= held {
			continue
		}
		if err := c.adoptKey(ctx, info.Tree, tk, inv.Epoch, r.Member(c.account).Role, inv.Sender, inv.SenderKey); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// openInvite verifies an invite to this Client's shared tree (FORMAT.md §12.2) and the roster
// served with it, and returns the tree key. For a tree this account holds, the sender must be the
// owner its bundle entry names, with that key. Accepting (no entry yet), the sender's keys are the
// ones this device trusts for it (pinned on first sight; a changed key blocks), and the sender
// becomes the tree's trusted owner. The roster signed by the owner must list this account active
// with the invite's role and epoch.
func (c *Client) openInvite(ctx context.Context, info *api.InviteInfo) (format.TreeKey, *format.Invite, *format.Roster, error) {
	what := "invite for shared folder " + info.Tree.String()
	inv, err := format.ParseInvite(info.Invite)
	if err != nil {
		return format.TreeKey{}, nil, nil, fmt.Errorf("client: %s: %w", what, err)
	}
	if inv.Tree != info.Tree || inv.Recipient != c.account || inv.Tree != c.share.id {
		return format.TreeKey{}, nil, nil, fmt.Errorf("client: %s: names another tree or recipient: %w", what, coffer.ErrAuth)
	}
	owner, ownerKey := c.share.trustedOwner()
	var sender *format.PublicKeys
	if owner != (coffer.AccountID{}) {
		if inv.Sender != owner || inv.SenderKey != ownerKey {
			return format.TreeKey{}, nil, nil, fmt.Errorf("client: %s: sent by another account or key than the folder's owner recorded in this account's key bundle: %w", what, coffer.ErrAuth)
		}
		sender = &format.PublicKeys{Account: owner, Signing: ed25519.PublicKey(ownerKey[:])}
	} else {
		// Not held (first accept, or re-invited after leaving): this device's last verified
		// owner of the tree, if any, must not change either.
		if pin := c.shares.pins.get(info.Tree); pin.OwnerKey != "" && (pin.Owner != inv.Sender || pin.OwnerKey != hexKey(inv.SenderKey)) {
			return format.TreeKey{}, nil, nil, fmt.Errorf("client: %s: sent by another account or key than the folder's owner this device verified before: %w", what, coffer.ErrAuth)
		}
		if sender, err = c.trustedKeys(ctx, inv.Sender, info.OwnerUsername); err != nil {
			return format.TreeKey{}, nil, nil, fmt.Errorf("client: %s: sender's keys: %w", what, err)
		}
	}
	tk, err := inv.Open(c.bundle, sender)
	if err != nil {
		return format.TreeKey{}, nil, nil, fmt.Errorf("client: %s: %w", what, err)
	}
	if owner == (coffer.AccountID{}) {
		c.share.setOwner(inv.Sender, inv.SenderKey) // verified against the sender's trusted keys
	}
	r, err := c.verifyRoster(ctx, info.Roster)
	if err != nil {
		return format.TreeKey{}, nil, nil, err
	}
	m := r.Member(c.account)
	if r.Owner != inv.Sender || m == nil || m.Role != inv.Role || r.Epoch != inv.Epoch {
		return format.TreeKey{}, nil, nil, fmt.Errorf("client: %s: does not match the folder's roster (owner, role or epoch): %w", what, coffer.ErrAuth)
	}
	if m.KEMFingerprint != c.pub.KEMFingerprint() {
		return format.TreeKey{}, nil, nil, fmt.Errorf("client: %s: the roster lists another KEM key for this account: %w", what, coffer.ErrAuth)
	}
	return tk, inv, r, nil
}

// noAccess explains a shared folder the server does not serve to this account any more.
func (c *Client) noAccess(err error) error {
	if c.share == nil || !errors.Is(err, coffer.ErrNotFound) {
		return err
	}
	return fmt.Errorf("client: shared folder %s: the server no longer gives this account access (removed by its owner, or left): %w", c.rootPath(), err)
}

// checkWritable refuses writes this account may not make to its tree: a read-only share, a
// removed membership, or a stale key epoch (the roster's epoch is newer than the key held:
// content written under the old key would be readable by a removed member). Account trees: nil.
func (c *Client) checkWritable() error {
	st := c.share
	if st == nil {
		return nil
	}
	st.mu.Lock()
	r, epoch, role := st.roster, st.epoch, st.role
	st.mu.Unlock()
	if r == nil {
		if role != format.ShareWrite {
			return fmt.Errorf("client: %s: %w", c.rootPath(), ErrReadOnly)
		}
		return nil
	}
	if r.Epoch != epoch {
		return fmt.Errorf("client: %s: refusing to write under key epoch %d while the folder's roster is at epoch %d: %w", c.rootPath(), epoch, r.Epoch, ErrKeyRotated)
	}
	if r.Owner == c.account {
		return nil
	}
	m := r.Member(c.account)
	switch {
	case m == nil || m.State != format.MemberActive:
		return fmt.Errorf("client: %s: %w", c.rootPath(), ErrNotMember)
	case m.Role != format.ShareWrite:
		return fmt.Errorf("client: %s: %w", c.rootPath(), ErrReadOnly)
	}
	return nil
}

// hexBytes decodes a pinned hex key (nil if malformed).
func hexBytes(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}
