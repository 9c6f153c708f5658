package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

// Shared folders (doc/PROTOCOL.md §9). A shared tree is an ordinary tree owned by the sharer,
// plus a roster (format.Roster, signed by the owner) the server enforces and one membership row
// per member with its latest invite. Reads need the owner or an accepted member; writes the
// owner or an accepted member with the write role. The server checks every roster and invite
// it stores, but clients verify them again: the server is not trusted.

var errForbiddenReadOnly = &apiError{status: http.StatusForbidden, code: api.CodeForbidden, msg: "read-only share: the owner gave you the read role"}

// shareRoutes registers the shared-folder endpoints on mux.
func (s *Server) shareRoutes(mux *http.ServeMux) {
	mux.Handle("POST /v1/trees", s.authed(s.handleShareCreate))
	mux.Handle("GET /v1/trees/{tree}/roster", s.authed(s.handleRosterGet))
	mux.Handle("POST /v1/trees/{tree}/roster", s.authed(s.handleRosterUpdate))
	mux.Handle("POST /v1/trees/{tree}/leave", s.authed(s.handleShareLeave))
	mux.Handle("GET /v1/trees/{tree}/blobs/{id}", s.authed(s.handleTreeBlobGet))
	mux.Handle("POST /v1/trees/{tree}/blobs/check", s.authed(s.handleTreeBlobCheck))
	mux.Handle("GET /v1/invites", s.authed(s.handleInvites))
	mux.Handle("POST /v1/invites/{tree}/accept", s.authed(s.handleInviteAccept))
	mux.Handle("POST /v1/invites/{tree}/decline", s.authed(s.handleInviteDecline))
	mux.Handle("GET /v1/shares", s.authed(s.handleShares))
	mux.Handle("GET /v1/accounts/{account}/keys", s.authed(s.handleAccountKeys))
	mux.Handle("PUT /v1/account/bundle", s.authed(s.handleBundleUpdate))
}

// shares returns the store's shared-folder support, or a 404 if the store has none.
func (s *Server) shares() (metastore.Shares, error) {
	ss, ok := s.meta.(metastore.Shares)
	if !ok {
		return nil, &apiError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "this server's store does not support shared folders"}
	}
	return ss, nil
}

// shareAccess decides whether sess, which does not own the tree of h, may read it (or write,
// with write): only an accepted member (the store marks removed, left and declined members),
// and for writes one with the write role. Anything else looks like a missing tree.
func (s *Server) shareAccess(ctx context.Context, sess *metastore.Session, h *metastore.Head, write bool) error {
	ss, ok := s.meta.(metastore.Shares)
	if !ok {
		return errNotFound("tree")
	}
	m, err := ss.Membership(ctx, h.Tree, sess.Account)
	switch {
	case errors.Is(err, coffer.ErrNotFound):
		return errNotFound("tree")
	case err != nil:
		return internalError("tree access: membership", err)
	case m.Status != metastore.MemberAccepted:
		return errNotFound("tree")
	case write && m.Role != format.ShareWrite:
		return errForbiddenReadOnly
	}
	return nil
}

// commitWriter returns the key allowed to sign sess's commit to the tree of h: the owner's
// identity key for the owner, else the caller's key in the tree's roster (treeAccess already
// checked that the caller is an accepted writer).
func (s *Server) commitWriter(ctx context.Context, sess *metastore.Session, h *metastore.Head) (ed25519.PublicKey, error) {
	if sess.Account == h.Owner {
		return s.signingKey(ctx, h.Owner)
	}
	ro, err := s.storedRoster(ctx, h.Tree)
	if err != nil {
		return nil, err
	}
	m := ro.Member(sess.Account)
	if m == nil || m.State != format.MemberActive || m.Role != format.ShareWrite {
		return nil, errForbiddenReadOnly
	}
	return ed25519.PublicKey(m.Signing[:]), nil
}

// storedRoster returns the parsed current roster of a shared tree.
func (s *Server) storedRoster(ctx context.Context, tree coffer.TreeID) (*format.Roster, error) {
	ss, err := s.shares()
	if err != nil {
		return nil, err
	}
	r, err := ss.Roster(ctx, tree)
	if errors.Is(err, coffer.ErrNotFound) {
		return nil, errNotFound("shared tree")
	}
	if err != nil {
		return nil, internalError("roster", err)
	}
	ro, err := format.ParseRoster(r.Roster)
	if err != nil {
		return nil, internalError("stored roster", err)
	}
	return ro, nil
}

// storeCommit applies a validated commit: through Shares.CommitShared (which also feeds the
// tree's accepted members) when the store supports shares, else Trees.Commit.
func (s *Server) storeCommit(ctx context.Context, c *metastore.Commit) ([]metastore.Notice, error) {
	if ss, ok := s.meta.(metastore.Shares); ok {
		return ss.CommitShared(ctx, *c)
	}
	seq, err := s.meta.Commit(ctx, *c)
	if err != nil {
		return nil, err
	}
	return []metastore.Notice{{Account: c.Owner, Seq: seq}}, nil
}

// publishAll announces feed entries; it returns acct's Seq among them (0 if none).
func (s *Server) publishAll(ctx context.Context, ns []metastore.Notice, acct coffer.AccountID) coffer.Seq {
	var mine coffer.Seq
	for _, n := range ns {
		s.publish(ctx, n.Account, n.Seq)
		if n.Account == acct {
			mine = n.Seq
		}
	}
	return mine
}

// checkRosterBytes parses a roster sent by the owner and checks it names tree and owner and is
// signed with the owner's current identity key.
func (s *Server) checkRosterBytes(ctx context.Context, raw []byte, tree coffer.TreeID, owner coffer.AccountID) (*format.Roster, error) {
	ro, err := format.ParseRoster(raw)
	if err != nil {
		if errors.Is(err, coffer.ErrAuth) {
			return nil, errInvalidCommit("roster: bad signature")
		}
		return nil, errBadRequest("roster: %v", err)
	}
	key, err := s.signingKey(ctx, owner)
	if err != nil {
		return nil, err
	}
	switch {
	case ro.Tree != tree:
		return nil, errBadRequest("roster: for tree %v, not %v", ro.Tree, tree)
	case ro.Owner != owner:
		return nil, errBadRequest("roster: names owner %v, not the caller", ro.Owner)
	case !bytes.Equal(ro.OwnerKey[:], key):
		return nil, errInvalidCommit("roster: not signed with the owner's identity key")
	}
	return ro, nil
}

// checkInvites parses invites and checks each against roster ro: the tree, the roster's epoch,
// the owner as sender with the owner key, an active member as recipient with its role and KEM
// fingerprint, at most one per member, and one for every account in required.
func checkInvites(raws [][]byte, ro *format.Roster, required map[coffer.AccountID]bool) ([]metastore.ShareInvite, error) {
	out := make([]metastore.ShareInvite, 0, len(raws))
	seen := map[coffer.AccountID]bool{}
	for i, raw := range raws {
		inv, err := format.ParseInvite(raw)
		if err != nil {
			return nil, errBadRequest("invites[%d]: %v", i, err)
		}
		m := ro.Member(inv.Recipient)
		switch {
		case inv.Tree != ro.Tree:
			return nil, errBadRequest("invites[%d]: for another tree", i)
		case inv.Epoch != ro.Epoch:
			return nil, errBadRequest("invites[%d]: epoch %d, the roster's is %d", i, inv.Epoch, ro.Epoch)
		case inv.Sender != ro.Owner || inv.SenderKey != ro.OwnerKey:
			return nil, errBadRequest("invites[%d]: not sent by the owner with the roster's owner key", i)
		case m == nil || m.State != format.MemberActive:
			return nil, errBadRequest("invites[%d]: recipient %v is not an active member of the roster", i, inv.Recipient)
		case inv.Role != m.Role:
			return nil, errBadRequest("invites[%d]: role %d, the roster gives %v role %d", i, inv.Role, inv.Recipient, m.Role)
		case inv.RecipientKEM != m.KEMFingerprint:
			return nil, errBadRequest("invites[%d]: KEM fingerprint differs from the roster's for %v", i, inv.Recipient)
		case seen[inv.Recipient]:
			return nil, errBadRequest("invites[%d]: second invite for %v", i, inv.Recipient)
		}
		seen[inv.Recipient] = true
		out = append(out, metastore.ShareInvite{Account: inv.Recipient, Role: inv.Role, Epoch: inv.Epoch, Invite: raw})
	}
	for acct := range required {
		if !seen[acct] {
			return nil, errBadRequest("invites: missing the invite for member %v", acct)
		}
	}
	return out, nil
}

// handleShareCreate creates a shared tree: first commit, roster generation 1 and invites, in one
// transaction (POST /v1/trees).
func (s *Server) handleShareCreate(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	ss, err := s.shares()
	if err != nil {
		return err
	}
	var req api.ShareCreateRequest
	if err := decodeJSON(w, r, maxCommitBody, &req); err != nil {
		return err
	}
	if req.Tree == (coffer.TreeID{}) {
		return errBadRequest("tree: zero")
	}
	ro, err := s.checkRosterBytes(ctx, req.Roster, req.Tree, sess.Account)
	if err != nil {
		return err
	}
	if ro.Generation != 1 || ro.Epoch != 1 {
		return errBadRequest("roster: a new shared tree starts at generation 1, epoch 1")
	}
	required := map[coffer.AccountID]bool{}
	for _, m := range ro.Members {
		if m.State != format.MemberActive {
			return errBadRequest("roster: member %v of a new tree is not active", m.Account)
		}
		required[m.Account] = true
	}
	invites, err := checkInvites(req.Invites, ro, required)
	if err != nil {
		return err
	}
	if _, err := s.meta.Head(ctx, req.Tree); err == nil {
		return &apiError{status: http.StatusConflict, code: api.CodeExists, msg: "tree ID taken"}
	} else if !errors.Is(err, coffer.ErrNotFound) {
		return internalError("share create: head", err)
	}
	writer, err := s.signingKey(ctx, sess.Account)
	if err != nil {
		return err
	}
	c, err := s.validateCommit(ctx, commitTarget{tree: req.Tree, owner: sess.Account, writer: writer}, &req.Commit)
	if err != nil {
		return err
	}
	ns, err := ss.CreateShare(ctx, *c, metastore.Roster{Tree: req.Tree, Owner: sess.Account, Generation: 1, Epoch: 1, Roster: req.Roster}, invites, s.now())
	switch {
	case errors.Is(err, coffer.ErrConflict), errors.Is(err, coffer.ErrExist):
		return &apiError{status: http.StatusConflict, code: api.CodeExists, msg: "tree ID taken"}
	case errors.Is(err, coffer.ErrNotFound):
		return errBadRequest("invites: a member is not an account, or a referenced blob is gone")
	case err != nil:
		return internalError("share create", err)
	}
	s.metrics.commits.Add(1)
	seq := s.publishAll(ctx, ns, sess.Account)
	writeJSON(w, http.StatusOK, api.CommitResponse{Seq: seq, Version: c.Version})
	return nil
}

// rosterChanges works out what a roster update changes: the members newly removed and the
// members that need an invite (new, re-activated, role changed, or, when the epoch grows, every
// active member still invited or accepted: one who declined or left gets the new key only if
// the owner re-invites it). It enforces the successor rules, with a stale generation or an
// until that names an older head as 409 conflicts.
func rosterChanges(prev, next *format.Roster, head *metastore.Head, status map[coffer.AccountID]metastore.MemberStatus) (removed []coffer.AccountID, required map[coffer.AccountID]bool, err error) {
	if next.Generation != prev.Generation+1 {
		return nil, nil, &apiError{status: http.StatusConflict, code: api.CodeConflict,
			msg: fmt.Sprintf("roster generation %d does not follow the stored %d: re-read the roster", next.Generation, prev.Generation)}
	}
	required = map[coffer.AccountID]bool{}
	for _, nm := range next.Members {
		pm := prev.Member(nm.Account)
		switch {
		case nm.State == format.MemberRemoved && pm != nil && pm.State == format.MemberActive:
			if nm.Until < head.Version {
				return nil, nil, conflictError(head)
			}
			removed = append(removed, nm.Account)
		case nm.State != format.MemberActive:
		case pm == nil || pm.State == format.MemberRemoved || pm.Role != nm.Role:
			required[nm.Account] = true
		case next.Epoch != prev.Epoch && (status[nm.Account] == metastore.MemberInvited || status[nm.Account] == metastore.MemberAccepted):
			required[nm.Account] = true
		}
	}
	if err := format.CheckRosterSuccessor(prev, next, head.Version); err != nil {
		return nil, nil, errInvalidCommit("roster: %v", err)
	}
	return removed, required, nil
}

// handleRosterUpdate installs the owner's next roster with its invites and optional commit
// (POST /v1/trees/{tree}/roster).
func (s *Server) handleRosterUpdate(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	ss, err := s.shares()
	if err != nil {
		return err
	}
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	var req api.RosterUpdateRequest
	if err := decodeJSON(w, r, maxCommitBody, &req); err != nil {
		return err
	}
	h, err := s.treeAccess(ctx, sess, id, false)
	if err != nil {
		return err
	}
	if h.Owner != sess.Account {
		return &apiError{status: http.StatusForbidden, code: api.CodeForbidden, msg: "only the owner changes a shared folder's members"}
	}
	prev, err := s.storedRoster(ctx, id)
	if err != nil {
		return err
	}
	next, err := s.checkRosterBytes(ctx, req.Roster, id, sess.Account)
	if err != nil {
		return err
	}
	ms, err := ss.Memberships(ctx, id)
	if err != nil {
		return internalError("roster update: members", err)
	}
	status := make(map[coffer.AccountID]metastore.MemberStatus, len(ms))
	for _, m := range ms {
		status[m.Account] = m.Status
	}
	removed, required, err := rosterChanges(prev, next, h, status)
	if err != nil {
		return err
	}
	invites, err := checkInvites(req.Invites, next, required)
	if err != nil {
		return err
	}
	u := metastore.RosterUpdate{
		Roster:      metastore.Roster{Tree: id, Owner: sess.Account, Generation: next.Generation, Epoch: next.Epoch, Roster: req.Roster},
		HeadVersion: h.Version, Removed: removed, Invites: invites, Now: s.now(),
	}
	if req.Commit != nil {
		writer, err := s.signingKey(ctx, sess.Account)
		if err != nil {
			return err
		}
		if u.Commit, err = s.validateCommit(ctx, commitTarget{tree: id, owner: sess.Account, writer: writer, base: h}, req.Commit); err != nil {
			return err
		}
	}
	ns, err := ss.UpdateRoster(ctx, u)
	switch {
	case errors.Is(err, coffer.ErrConflict):
		cur, herr := s.meta.Head(ctx, id)
		if herr != nil {
			return internalError("roster update: head after conflict", herr)
		}
		return conflictError(&cur)
	case errors.Is(err, coffer.ErrNotFound):
		return errInvalidCommit("a member is not an account, or a referenced blob is no longer stored")
	case err != nil:
		return internalError("roster update", err)
	}
	resp := api.RosterUpdateResponse{Generation: next.Generation}
	seq := s.publishAll(ctx, ns, sess.Account)
	if u.Commit != nil {
		s.metrics.commits.Add(1)
		for _, n := range ns {
			if n.Account == sess.Account { // the commit's entry comes first
				seq = n.Seq
				break
			}
		}
		resp.Commit = &api.CommitResponse{Seq: seq, Version: u.Commit.Version}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
