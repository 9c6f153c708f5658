package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

// Upload-only (file-request) links and their drops (doc/PROTOCOL.md §8, "Upload-only links").
// A visitor who opened an upload-only link may upload blobs and drops with its link token, and
// nothing else: no listing, no blob or record read. Blobs and drops belong to, and count against
// the quota of, the link's owner. The owner lists and deletes its pending drops with its session.

// maxDropBody bounds POST /v1/links/{link}/drops: a drop of format.MaxDropLen bytes in base64 plus
// its blob list.
const maxDropBody = 16 << 20

var errUploadOnly = &apiError{status: http.StatusForbidden, code: api.CodeForbidden,
	msg: "this link is upload-only: it gives no read access"}

var errNotUploadLink = &apiError{status: http.StatusForbidden, code: api.CodeForbidden,
	msg: "this link is not an upload-only link"}

func (s *Server) dropRoutes(mux *http.ServeMux) {
	mux.Handle("PUT /v1/links/{link}/blobs/{id}", s.public(s.handleLinkBlobPut))
	mux.Handle("POST /v1/links/{link}/drops", s.public(s.handleLinkDropCreate))
	mux.Handle("GET /v1/drops", s.authed(s.handleDrops))
	mux.Handle("DELETE /v1/drops/{drop}", s.authed(s.handleDropDelete))
	mux.Handle("POST /v1/drops/delete", s.authed(s.handleDropsDelete))
}

// drops returns the store's drop support, or a 404 if the store has none.
func (s *Server) drops() (metastore.Drops, error) {
	ds, ok := s.meta.(metastore.Drops)
	if !ok {
		return nil, &apiError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "this server's store does not support upload-only links"}
	}
	return ds, nil
}

// isUploadOnly reports whether a stored link record is an upload-only link.
func isUploadOnly(l metastore.Link) bool {
	fl, err := format.ParseLink(l.Record)
	return err == nil && fl.UploadOnly()
}

// readLinkAccess is linkAccess for the link-gated reads: upload-only links give none.
func (s *Server) readLinkAccess(r *http.Request) (metastore.Link, error) {
	l, err := s.linkAccess(r)
	if err != nil {
		return l, err
	}
	if isUploadOnly(l) {
		return l, errUploadOnly
	}
	return l, nil
}

// uploadLinkAccess is linkAccess for uploads: the link must be upload-only and have uploads left.
func (s *Server) uploadLinkAccess(r *http.Request) (metastore.Link, error) {
	l, err := s.linkAccess(r)
	if err != nil {
		return l, err
	}
	if !isUploadOnly(l) {
		return l, errNotUploadLink
	}
	if !l.Usable(s.now()) {
		return l, errLinkGone
	}
	return l, nil
}

// openUploadLink answers a successful proof for an upload-only link: no download is counted and
// no node record is served (the visitor gets no read access).
func (s *Server) openUploadLink(w http.ResponseWriter, r *http.Request, l metastore.Link) error {
	ctx := r.Context()
	if _, err := s.meta.Node(ctx, l.Tree, l.Node); errors.Is(err, coffer.ErrNotFound) {
		return &apiError{status: http.StatusGone, code: api.CodeGone, msg: "the link's folder no longer exists"}
	} else if err != nil {
		return internalError("link open: node", err)
	}
	owner, err := s.account(ctx, l.Owner)
	if err != nil {
		return err
	}
	exp := s.now().Add(linkTokenTTL)
	writeJSON(w, http.StatusOK, api.LinkOpenResponse{
		Token: s.linkToken(l.ID, exp), Record: l.Record, Owner: owner.Username, OwnerPublicKeys: owner.PublicKeys,
		Expires: unixOrZero(l.Expires), TokenExpires: exp.Unix(),
	})
	return nil
}

// handleLinkBlobPut stores a blob uploaded through an upload-only link, owned by (and counted
// against the quota of) the link's owner, exactly as PUT /v1/trees/{tree}/blobs/{id} does.
func (s *Server) handleLinkBlobPut(w http.ResponseWriter, r *http.Request) error {
	l, err := s.uploadLinkAccess(r)
	if err != nil {
		return err
	}
	r.SetPathValue("tree", l.Tree.String())
	return s.handleBlobPut(w, r, &metastore.Session{Account: l.Owner})
}

// handleLinkDropCreate stores a drop: its structure is checked (the contents are encrypted to the
// owner, who checks the rest), it must name this link and its owner, and its blobs must be the
// owner's (uploaded through the link). It counts one upload and notifies the owner's change
// streams.
func (s *Server) handleLinkDropCreate(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ds, err := s.drops()
	if err != nil {
		return err
	}
	l, err := s.uploadLinkAccess(r)
	if err != nil {
		return err
	}
	var req api.DropCreateRequest
	if err := decodeJSON(w, r, maxDropBody, &req); err != nil {
		return err
	}
	d, err := format.ParseDrop(req.Drop)
	if err != nil {
		return errBadRequest("drop: %v", err)
	}
	switch {
	case d.Link != format.LinkID(l.ID):
		return errBadRequest("drop: names another link")
	case d.Owner != l.Owner:
		return errBadRequest("drop: not addressed to the link's owner")
	case len(req.Blobs) > api.MaxDropBlobs:
		return errBadRequest("blobs: more than %d", api.MaxDropBlobs)
	}
	blobs := slices.Clone(req.Blobs)
	slices.SortFunc(blobs, func(a, b coffer.BlobID) int { return bytes.Compare(a[:], b[:]) })
	blobs = slices.Compact(blobs)
	md := metastore.Drop{ID: d.ID, Link: l.ID, Owner: l.Owner, Record: req.Drop, Blobs: blobs, Created: s.now()}
	nl, err := ds.CreateDrop(ctx, md, s.now())
	switch {
	case errors.Is(err, coffer.ErrForbidden):
		return errLinkGone
	case errors.Is(err, coffer.ErrQuota):
		return errQuota
	case errors.Is(err, coffer.ErrExist):
		return &apiError{status: http.StatusConflict, code: api.CodeExists, msg: "drop id already exists"}
	case errors.Is(err, coffer.ErrNotFound):
		return errBadRequest("blobs: a listed blob was not uploaded through this link (or was collected): upload it again")
	case err != nil:
		return internalError("drop create", err)
	}
	s.log.Info("drop received", "account", l.Owner.String(), "blobs", len(blobs), "bytes", len(req.Drop))
	s.announceDrop(ctx, l.Owner)
	writeJSON(w, http.StatusOK, api.DropCreateResponse{Uploads: nl.Uploads, MaxUploads: nl.MaxUploads})
	return nil
}

// announceDrop wakes the owner's change streams (which then report the pending drops).
func (s *Server) announceDrop(ctx context.Context, owner coffer.AccountID) {
	seq, err := s.meta.LatestSeq(ctx, owner)
	if err != nil {
		s.log.Warn("drop: latest seq", "err", err)
		return
	}
	s.publish(ctx, owner, seq)
}

// pendingDrops returns the caller's pending drop count, or -1 if the store has no drops.
func (s *Server) pendingDrops(ctx context.Context, acct coffer.AccountID) (int64, error) {
	ds, ok := s.meta.(metastore.Drops)
	if !ok {
		return -1, nil
	}
	return ds.PendingDrops(ctx, acct)
}

func (s *Server) handleDrops(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ds, err := s.drops()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var after int64
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return errBadRequest("after: want a non-negative integer")
		}
	}
	limit := defaultChangesLimit
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxChangesLimit {
			return errBadRequest("limit: want 1 to %d", maxChangesLimit)
		}
	}
	list, err := ds.Drops(r.Context(), sess.Account, after, limit+1)
	if err != nil {
		return internalError("drops", err)
	}
	resp := api.DropsResponse{Drops: []api.DropInfo{}}
	if len(list) > limit {
		list, resp.More = list[:limit], true
	}
	for _, d := range list {
		blobs := d.Blobs
		if blobs == nil {
			blobs = []coffer.BlobID{}
		}
		resp.Drops = append(resp.Drops, api.DropInfo{ID: hex.EncodeToString(d.ID[:]), Seq: d.Seq,
			Link: hex.EncodeToString(d.Link[:]), Drop: d.Record, Blobs: blobs, Created: d.Created.Unix()})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// parseDropID parses a hex drop ID.
func parseDropID(p, field string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(p)
	if err != nil || len(b) != len(id) || hex.EncodeToString(b) != p {
		return id, errBadRequest("%s: drop id %q: want 32 lowercase hex digits", field, p)
	}
	copy(id[:], b)
	return id, nil
}

func (s *Server) handleDropsDelete(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ds, err := s.drops()
	if err != nil {
		return err
	}
	var req api.DropsDeleteRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if len(req.Drops) > api.MaxDropsDelete {
		return errBadRequest("drops: more than %d ids", api.MaxDropsDelete)
	}
	ids := make([][16]byte, len(req.Drops))
	for i, p := range req.Drops {
		if ids[i], err = parseDropID(p, "drops"); err != nil {
			return err
		}
	}
	n, err := ds.DeleteDrops(r.Context(), sess.Account, ids)
	if err != nil {
		return internalError("drops delete", err)
	}
	writeJSON(w, http.StatusOK, api.DropsDeleteResponse{Deleted: n})
	return nil
}

func (s *Server) handleDropDelete(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ds, err := s.drops()
	if err != nil {
		return err
	}
	id, err := parseDropID(r.PathValue("drop"), "path")
	if err != nil {
		return err
	}
	if err := ds.DeleteDrop(r.Context(), sess.Account, id); err != nil {
		if errors.Is(err, coffer.ErrNotFound) {
			return errNotFound("drop")
		}
		return internalError("drop delete", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
