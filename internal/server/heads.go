package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

// headRoutes registers the head history and head gossip endpoints (doc/PROTOCOL.md §5).
func (s *Server) headRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/trees/{tree}/heads", s.authed(s.handleHeads))
	mux.Handle("PUT /v1/trees/{tree}/seen", s.authed(s.handleSeen))
}

// headHistory returns the store's head history, or a 404 if the store has none.
func (s *Server) headHistory() (metastore.HeadHistory, error) {
	hh, ok := s.meta.(metastore.HeadHistory)
	if !ok {
		return nil, &apiError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "this server's store keeps no head history"}
	}
	return hh, nil
}

// queryVersion parses a positive version query parameter.
func queryVersion(r *http.Request, name string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	if err != nil || v == 0 {
		return 0, errBadRequest("query: %s: want a version >= 1", name)
	}
	return v, nil
}

// handleHeads serves the tree's heads from..to (api.HeadsContentType).
func (s *Server) handleHeads(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	from, err := queryVersion(r, "from")
	if err != nil {
		return err
	}
	to, err := queryVersion(r, "to")
	if err != nil {
		return err
	}
	if to < from {
		return errBadRequest("query: to %d is below from %d", to, from)
	}
	hh, err := s.headHistory()
	if err != nil {
		return err
	}
	h, err := s.treeAccess(ctx, sess, id, false)
	if err != nil {
		return err
	}
	to = min(to, h.Version)
	var heads [][]byte
	if from <= to {
		if heads, err = hh.Heads(ctx, id, from, to, api.MaxHeads); err != nil {
			return internalError("heads", err)
		}
	}
	w.Header().Set("Content-Type", api.HeadsContentType)
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, b := range heads {
		if len(b) != format.HeadLen {
			s.log.Error("heads: stored head of wrong length", "tree", id.String(), "len", len(b))
			panic(http.ErrAbortHandler)
		}
		bw.Write(b)
	}
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}

// handleSeen stores the head the session publishes (unless it is the one it published last) and
// answers the tree's published heads and current head (api.SeenResponse). The published head must be an authentic head of this tree (the
// owner's signature) no newer than the current head; the server does not check that it is on its
// chain: the clients do.
func (s *Server) handleSeen(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	var req api.SeenRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	hh, err := s.headHistory()
	if err != nil {
		return err
	}
	cur, err := s.treeAccess(ctx, sess, id, false)
	if err != nil {
		return err
	}
	ph, err := format.ParseHead(req.Head)
	if err != nil {
		return errBadRequest("head: %v", err)
	}
	if ph.Tree != id {
		return errBadRequest("head: of tree %s, not %s", ph.Tree, id)
	}
	if ph.Version > cur.Version {
		return errBadRequest("head: version %d is newer than the tree's %d", ph.Version, cur.Version)
	}
	mayWrite, accounts, err := s.seenPolicy(ctx, cur)
	if err != nil {
		return err
	}
	if !bytes.Equal(req.Head, cur.Head) { // the current head was checked at its commit
		if !mayWrite(ph.Writer[:], ph.Version) || ph.VerifySignature() != nil {
			return errBadRequest("head: not signed by a writer of the tree")
		}
	}
	// Published heads first, then the current head: a head is published only after it was
	// committed, so no published head is newer than the current one read afterwards.
	seen, err := hh.SeenHeads(ctx, id, api.MaxSeenHeads)
	if err != nil {
		return internalError("seen heads", err)
	}
	own := slices.IndexFunc(seen, func(p metastore.SeenHead) bool { return p.Session == sess.ID })
	if own < 0 || !bytes.Equal(seen[own].Head, req.Head) { // unchanged: no write (and no fsync)
		pub := metastore.SeenHead{Tree: id, Session: sess.ID, Device: sess.Device, Version: ph.Version,
			Head: req.Head, Published: s.now()}
		err = hh.PublishSeen(ctx, pub)
		if errors.Is(err, coffer.ErrNotFound) {
			return errNotFound("tree")
		}
		if err != nil {
			return internalError("publish seen head", err)
		}
		if own >= 0 {
			seen = slices.Delete(seen, own, own+1)
		}
		seen = append([]metastore.SeenHead{pub}, seen...)
	}
	now, err := s.meta.Head(ctx, id)
	if err != nil {
		return internalError("seen: head", err)
	}
	// Publications of revoked or expired sessions are not served (a device logged out for good
	// cannot block the others with a stale branch).
	alive := map[string]bool{}
	for _, acct := range accounts {
		live, err := s.meta.ListSessions(ctx, acct)
		if err != nil {
			return internalError("seen: sessions", err)
		}
		for _, ls := range live {
			alive[ls.ID] = !ls.Expires.Before(s.now())
		}
	}
	resp := api.SeenResponse{Current: api.HeadInfo{Tree: now.Tree, Version: now.Version, Head: now.Head},
		Heads: make([]api.SeenHead, 0, len(seen))}
	for _, p := range seen {
		if alive[p.Session] {
			resp.Heads = append(resp.Heads, api.SeenHead{Session: p.Session, Device: p.Device, Head: p.Head,
				Published: p.Published.UnixMilli(), Own: p.Session == sess.ID})
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// seenPolicy returns who may have signed a head of the tree (the owner; in a shared tree, also
// the writers its current roster names, a removed writer up to its removal) and the accounts
// whose sessions' publications are served (the owner and a shared tree's accepted members).
func (s *Server) seenPolicy(ctx context.Context, cur *metastore.Head) (func(key []byte, version uint64) bool, []coffer.AccountID, error) {
	owner, err := s.signingKey(ctx, cur.Owner)
	if err != nil {
		return nil, nil, err
	}
	mayWrite := func(key []byte, _ uint64) bool { return bytes.Equal(key, owner) }
	accounts := []coffer.AccountID{cur.Owner}
	ss, err := s.shares()
	if err != nil {
		return mayWrite, accounts, nil // a store without shared folders: only account trees
	}
	r, err := ss.Roster(ctx, cur.Tree)
	if errors.Is(err, coffer.ErrNotFound) {
		return mayWrite, accounts, nil // an account tree
	}
	if err != nil {
		return nil, nil, internalError("seen: roster", err)
	}
	ro, err := format.ParseRoster(r.Roster)
	if err != nil {
		return nil, nil, internalError("seen: stored roster", err)
	}
	ms, err := ss.Memberships(ctx, cur.Tree)
	if err != nil {
		return nil, nil, internalError("seen: memberships", err)
	}
	for _, m := range ms {
		if m.Status == metastore.MemberAccepted {
			accounts = append(accounts, m.Account)
		}
	}
	return ro.MayWriteHead, accounts, nil
}
