package server

import (
	"context"
	"errors"
	"net/http"

	"coffer"
	"coffer/api"
	"coffer/internal/metastore"
)

// Membership endpoints of shared folders: roster and invite reads, accept, decline, leave, the
// share summary, account keys and shared-tree blob reads (doc/PROTOCOL.md §9).

// memberStatuses converts membership rows, with each member's username.
func (s *Server) memberStatuses(ctx context.Context, ms []metastore.Membership) ([]api.MemberStatus, error) {
	out := make([]api.MemberStatus, 0, len(ms))
	for _, m := range ms {
		a, err := s.meta.Account(ctx, m.Account)
		if err != nil {
			return nil, internalError("member account", err)
		}
		out = append(out, api.MemberStatus{Account: m.Account, Username: a.Username, Role: m.Role, Status: string(m.Status), Epoch: m.Epoch})
	}
	return out, nil
}

// rosterReader returns the stored roster of tree if sess may read it: the owner, or a member
// whose status is invited or accepted. Others get 404.
func (s *Server) rosterReader(ctx context.Context, ss metastore.Shares, sess *metastore.Session, tree coffer.TreeID) (metastore.Roster, error) {
	ro, err := ss.Roster(ctx, tree)
	if errors.Is(err, coffer.ErrNotFound) {
		return ro, errNotFound("shared tree")
	}
	if err != nil {
		return ro, internalError("roster", err)
	}
	if ro.Owner == sess.Account {
		return ro, nil
	}
	m, err := ss.Membership(ctx, tree, sess.Account)
	switch {
	case errors.Is(err, coffer.ErrNotFound):
		return ro, errNotFound("shared tree")
	case err != nil:
		return ro, internalError("membership", err)
	case m.Status != metastore.MemberInvited && m.Status != metastore.MemberAccepted:
		return ro, errNotFound("shared tree")
	}
	return ro, nil
}

func (s *Server) handleRosterGet(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	ss, err := s.shares()
	if err != nil {
		return err
	}
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	ro, err := s.rosterReader(ctx, ss, sess, id)
	if err != nil {
		return err
	}
	owner, err := s.meta.Account(ctx, ro.Owner)
	if err != nil {
		return internalError("roster: owner", err)
	}
	h, err := s.meta.Head(ctx, id)
	if err != nil {
		return internalError("roster: head", err)
	}
	ms, err := ss.Memberships(ctx, id)
	if err != nil {
		return internalError("roster: members", err)
	}
	members, err := s.memberStatuses(ctx, ms)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.RosterResponse{Tree: id, Roster: ro.Roster, Owner: ro.Owner, OwnerUsername: owner.Username,
		OwnerPublicKeys: owner.PublicKeys, Members: members, Head: h.Version})
	return nil
}

func (s *Server) handleInvites(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	ss, err := s.shares()
	if err != nil {
		return err
	}
	ms, err := ss.AccountShares(ctx, sess.Account)
	if err != nil {
		return internalError("invites", err)
	}
	resp := api.InvitesResponse{Invites: []api.InviteInfo{}}
	for _, m := range ms {
		if m.Status != metastore.MemberInvited && m.Status != metastore.MemberAccepted {
			continue
		}
		ro, err := ss.Roster(ctx, m.Tree)
		if err != nil {
			return internalError("invites: roster", err)
		}
		owner, err := s.meta.Account(ctx, m.Owner)
		if err != nil {
			return internalError("invites: owner", err)
		}
		resp.Invites = append(resp.Invites, api.InviteInfo{Tree: m.Tree, Invite: m.Invite, Epoch: m.Epoch, Role: m.Role,
			Status: string(m.Status), Owner: m.Owner, OwnerUsername: owner.Username, OwnerPublicKeys: owner.PublicKeys,
			Roster: ro.Roster, Created: m.Updated.Unix()})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// setStatus moves the caller's membership of the path's tree and publishes the events.
func (s *Server) setStatus(w http.ResponseWriter, r *http.Request, sess *metastore.Session, from []metastore.MemberStatus,
	to metastore.MemberStatus, epoch uint32) error {
	ctx := r.Context()
	ss, err := s.shares()
	if err != nil {
		return err
	}
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	if ro, err := ss.Roster(ctx, id); err == nil && ro.Owner == sess.Account {
		return &apiError{status: http.StatusForbidden, code: api.CodeForbidden, msg: "the owner of a shared folder is not a member of it"}
	}
	ns, err := ss.SetMemberStatus(ctx, id, sess.Account, from, to, epoch, s.now())
	switch {
	case errors.Is(err, coffer.ErrNotFound):
		return errNotFound("invite")
	case errors.Is(err, coffer.ErrConflict):
		return &apiError{status: http.StatusConflict, code: api.CodeConflict, msg: "the invite was replaced (another epoch): re-read the invites"}
	case err != nil:
		return internalError("membership", err)
	}
	s.publishAll(ctx, ns, sess.Account)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleInviteAccept(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	var req api.InviteAcceptRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if req.Epoch == 0 {
		return errBadRequest("epoch: zero")
	}
	return s.setStatus(w, r, sess, []metastore.MemberStatus{metastore.MemberInvited, metastore.MemberDeclined}, metastore.MemberAccepted, req.Epoch)
}

func (s *Server) handleInviteDecline(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	return s.setStatus(w, r, sess, []metastore.MemberStatus{metastore.MemberInvited}, metastore.MemberDeclined, 0)
}

func (s *Server) handleShareLeave(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	return s.setStatus(w, r, sess, []metastore.MemberStatus{metastore.MemberAccepted, metastore.MemberInvited}, metastore.MemberLeft, 0)
}

func (s *Server) handleShares(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	ss, err := s.shares()
	if err != nil {
		return err
	}
	owned, err := ss.OwnedShares(ctx, sess.Account)
	if err != nil {
		return internalError("shares: owned", err)
	}
	resp := api.SharesResponse{Outgoing: []api.OutgoingShare{}, Incoming: []api.IncomingShare{}}
	for _, ro := range owned {
		ms, err := ss.Memberships(ctx, ro.Tree)
		if err != nil {
			return internalError("shares: members", err)
		}
		members, err := s.memberStatuses(ctx, ms)
		if err != nil {
			return err
		}
		resp.Outgoing = append(resp.Outgoing, api.OutgoingShare{Tree: ro.Tree, Roster: ro.Roster, Members: members})
	}
	mine, err := ss.AccountShares(ctx, sess.Account)
	if err != nil {
		return internalError("shares: incoming", err)
	}
	for _, m := range mine {
		owner, err := s.meta.Account(ctx, m.Owner)
		if err != nil {
			return internalError("shares: owner", err)
		}
		resp.Incoming = append(resp.Incoming, api.IncomingShare{Tree: m.Tree, Owner: m.Owner, OwnerUsername: owner.Username,
			Role: m.Role, Status: string(m.Status), Epoch: m.Epoch})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) handleAccountKeys(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	id, err := coffer.ParseAccountID(r.PathValue("account"))
	if err != nil {
		return errBadRequest("path: %v", err)
	}
	a, err := s.meta.Account(r.Context(), id)
	if errors.Is(err, coffer.ErrNotFound) {
		return errNotFound("account")
	}
	if err != nil {
		return internalError("account keys", err)
	}
	writeJSON(w, http.StatusOK, api.UserKeysResponse{Account: a.ID, PublicKeys: a.PublicKeys})
	return nil
}

// handleTreeBlobGet serves a blob referenced by the tree to anyone who may read the tree.
func (s *Server) handleTreeBlobGet(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	bid, err := coffer.ParseBlobID(r.PathValue("id"))
	if err != nil {
		return errBadRequest("path: %v", err)
	}
	h, err := s.treeAccess(ctx, sess, id, false)
	if err != nil {
		return err
	}
	ok, err := s.treeHasBlob(ctx, id, bid)
	if err != nil {
		return err
	}
	if !ok {
		return errNotFound("blob")
	}
	// The blob belongs to the tree's owner (commits only reference the owner's blobs).
	return s.handleBlobGet(w, r, &metastore.Session{Account: h.Owner})
}

// treeHasBlob reports whether a live or kept record of tree references blob.
func (s *Server) treeHasBlob(ctx context.Context, tree coffer.TreeID, blob coffer.BlobID) (bool, error) {
	ss, err := s.shares()
	if err != nil {
		return false, err
	}
	ok, err := ss.TreeBlob(ctx, tree, blob)
	if err != nil {
		return false, internalError("tree blob", err)
	}
	return ok, nil
}

// handleTreeBlobCheck is POST /v1/blobs/check against the blobs of the tree's owner, for anyone
// who may write the tree.
func (s *Server) handleTreeBlobCheck(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	h, err := s.treeAccess(r.Context(), sess, id, true)
	if err != nil {
		return err
	}
	return s.handleBlobCheck(w, r, &metastore.Session{Account: h.Owner})
}
