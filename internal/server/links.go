package server

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

// Public links (doc/PROTOCOL.md, "Public links"). The owner registers a signed link record and the
// visitors' LinkAuth verifier; a visitor proves knowledge of the link secret (and password) by
// signing a single-use challenge, which counts one download and returns a stateless link access
// token; the token reads listings and blobs of the linked subtree only. The server never sees the
// link secret: it is in the URL fragment.
const (
	linkTokenTTL  = 12 * time.Hour
	linkTokenLen  = 8 + 32 // expiry u64 || HMAC
	maxLinkWalk   = 4096   // parent hops when checking that a node is inside a linked subtree
	linkKeyPrefix = "link:"
)

var errLinkGone = &apiError{status: http.StatusGone, code: api.CodeGone, msg: "link revoked or expired"}

var errLinkProof = &apiError{status: http.StatusUnauthorized, code: api.CodeLoginFailed, msg: "wrong link password or secret"}

// linkRoutes registers the link endpoints on mux.
func (s *Server) linkRoutes(mux *http.ServeMux) {
	mux.Handle("POST /v1/links", s.authed(s.handleLinkCreate))
	mux.Handle("GET /v1/links", s.authed(s.handleLinks))
	mux.Handle("DELETE /v1/links/{link}", s.authed(s.handleLinkRevoke))
	mux.Handle("POST /v1/links/{link}/challenge", s.public(s.handleLinkChallenge))
	mux.Handle("POST /v1/links/{link}/open", s.public(s.handleLinkOpen))
	mux.Handle("GET /v1/links/{link}/trees/{tree}/folders/{folder}", s.public(s.handleLinkListing))
	mux.Handle("GET /v1/links/{link}/blobs/{id}", s.public(s.handleLinkBlob))
	s.dropRoutes(mux)
}

// links returns the store's link support, or a 404 if the store has none.
func (s *Server) links() (metastore.Links, error) {
	ls, ok := s.meta.(metastore.Links)
	if !ok {
		return nil, &apiError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "this server's store does not support links"}
	}
	return ls, nil
}

func pathLink(r *http.Request) ([16]byte, error) {
	var id [16]byte
	p := r.PathValue("link")
	if len(p) != 32 || strings.ToLower(p) != p {
		return id, errBadRequest("path: link id %q: want 32 lowercase hex digits", p)
	}
	if _, err := hex.Decode(id[:], []byte(p)); err != nil {
		return id, errBadRequest("path: link id %q: want 32 lowercase hex digits", p)
	}
	return id, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func linkInfo(l metastore.Link) api.LinkInfo {
	info := api.LinkInfo{
		ID: hex.EncodeToString(l.ID[:]), Tree: l.Tree, Node: l.Node, Record: l.Record,
		Created: unixOrZero(l.Created), Expires: unixOrZero(l.Expires), MaxDownloads: l.MaxDownloads,
		Downloads: l.Downloads, Revoked: l.Revoked, MaxUploads: l.MaxUploads, Uploads: l.Uploads,
	}
	if fl, err := format.ParseLink(l.Record); err == nil {
		info.Password = fl.Flags&format.LinkFlagPassword != 0
		info.UploadOnly = fl.UploadOnly()
	}
	return info
}

// linkOpen reports whether a link (revoked or not) still serves reads at now.
func linkLive(l metastore.Link, now time.Time) bool {
	return !l.Revoked && (l.Expires.IsZero() || now.Before(l.Expires))
}

func (s *Server) handleLinkCreate(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	ls, err := s.links()
	if err != nil {
		return err
	}
	var req api.LinkCreateRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	fl, err := format.ParseLink(req.Record)
	if err != nil {
		return errBadRequest("record: %v", err)
	}
	if err := fl.VerifySignature(); err != nil {
		return errBadRequest("record: bad signature")
	}
	switch {
	case len(req.Verifier) != ed25519.PublicKeySize:
		return errBadRequest("verifier: want %d bytes, got %d", ed25519.PublicKeySize, len(req.Verifier))
	case req.MaxDownloads < 0:
		return errBadRequest("max_downloads: must not be negative")
	case req.Expires < 0:
		return errBadRequest("expires: must not be negative")
	case req.Expires > 0 && !s.now().Before(time.Unix(req.Expires, 0)):
		return errBadRequest("expires: already in the past")
	case req.MaxUploads < 0:
		return errBadRequest("max_uploads: must not be negative")
	case fl.UploadOnly() && req.MaxDownloads != 0:
		return errBadRequest("max_downloads: an upload-only link has no downloads (use max_uploads)")
	case !fl.UploadOnly() && req.MaxUploads != 0:
		return errBadRequest("max_uploads: only for upload-only links")
	}
	acct, err := s.account(ctx, sess.Account)
	if err != nil {
		return err
	}
	signing, err := s.signingKey(ctx, sess.Account)
	if err != nil {
		return err
	}
	if !hmac.Equal(signing, fl.Owner[:]) {
		return errBadRequest("record: owner key is not the account's identity key")
	}
	if fl.Tree != acct.Tree {
		return errBadRequest("record: tree is not the account's tree")
	}
	n, err := s.meta.Node(ctx, fl.Tree, fl.Node)
	if errors.Is(err, coffer.ErrNotFound) {
		return errNotFound("node")
	}
	if err != nil {
		return internalError("link create: node", err)
	}
	if n.Kind != uint8(fl.Kind) {
		return errBadRequest("record: kind %s does not match the node's", fl.Kind)
	}
	l := metastore.Link{ID: fl.ID, Owner: sess.Account, Tree: fl.Tree, Node: fl.Node, Record: req.Record,
		Verifier: req.Verifier, Created: s.now(), MaxDownloads: req.MaxDownloads, MaxUploads: req.MaxUploads}
	if req.Expires > 0 {
		l.Expires = time.Unix(req.Expires, 0)
	}
	if err := ls.CreateLink(ctx, l); err != nil {
		if errors.Is(err, coffer.ErrExist) {
			return &apiError{status: http.StatusConflict, code: api.CodeExists, msg: "link id already exists"}
		}
		return internalError("link create", err)
	}
	s.log.Info("link created", "account", sess.Account.String(), "password", fl.Flags&format.LinkFlagPassword != 0,
		"upload_only", fl.UploadOnly())
	writeJSON(w, http.StatusOK, linkInfo(l))
	return nil
}

func (s *Server) handleLinks(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ls, err := s.links()
	if err != nil {
		return err
	}
	all, err := ls.ListLinks(r.Context(), sess.Account)
	if err != nil {
		return internalError("links", err)
	}
	resp := api.LinksResponse{Links: []api.LinkInfo{}}
	for _, l := range all {
		resp.Links = append(resp.Links, linkInfo(l))
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) handleLinkRevoke(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ls, err := s.links()
	if err != nil {
		return err
	}
	id, err := pathLink(r)
	if err != nil {
		return err
	}
	if err := ls.RevokeLink(r.Context(), sess.Account, id); err != nil {
		if errors.Is(err, coffer.ErrNotFound) {
			return errNotFound("link")
		}
		return internalError("link revoke", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// usableLink loads a link for a visitor: 404 if unknown, 410 if it can no longer be opened.
func (s *Server) usableLink(ctx context.Context, ls metastore.Links, id [16]byte) (metastore.Link, error) {
	l, err := ls.Link(ctx, id)
	if errors.Is(err, coffer.ErrNotFound) {
		return l, errNotFound("link")
	}
	if err != nil {
		return l, internalError("link", err)
	}
	if !l.Usable(s.now()) {
		return l, errLinkGone
	}
	return l, nil
}

func (s *Server) handleLinkChallenge(w http.ResponseWriter, r *http.Request) error {
	ls, err := s.links()
	if err != nil {
		return err
	}
	id, err := pathLink(r)
	if err != nil {
		return err
	}
	l, err := s.usableLink(r.Context(), ls, id)
	if err != nil {
		return err
	}
	fl, err := format.ParseLink(l.Record)
	if err != nil {
		return internalError("link challenge: stored record", err)
	}
	resp := api.LinkChallengeResponse{Flags: fl.Flags}
	if fl.Flags&format.LinkFlagPassword != 0 {
		resp.KDF = &api.KDF{Time: fl.KDF.Time, MemoryKiB: fl.KDF.MemoryKiB, Threads: fl.KDF.Threads, Salt: fl.KDF.Salt[:]}
	}
	c := s.newChallenge(linkKeyPrefix + hex.EncodeToString(id[:]))
	resp.Challenge = c[:]
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// handleLinkOpen checks a visitor's proof (throttled per link and per client address like logins),
// counts one download and returns the link record, the linked node's record and an access token.
func (s *Server) handleLinkOpen(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ls, err := s.links()
	if err != nil {
		return err
	}
	id, err := pathLink(r)
	if err != nil {
		return err
	}
	var req api.LinkOpenRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if len(req.Challenge) != 32 {
		return errBadRequest("challenge: want 32 bytes, got %d", len(req.Challenge))
	}
	if len(req.Signature) != ed25519.SignatureSize {
		return errBadRequest("signature: want 64 bytes, got %d", len(req.Signature))
	}
	name := linkKeyPrefix + hex.EncodeToString(id[:])
	keys := []string{name, clientKey(r)}
	if err := s.loginBlocked(ctx, keys); err != nil {
		return err
	}
	l, err := s.usableLink(ctx, ls, id)
	if err != nil {
		return err
	}
	ok, err := s.useChallenge(ctx, name, req.Challenge)
	if err != nil {
		return err
	}
	if len(l.Verifier) != ed25519.PublicKeySize ||
		!ed25519.Verify(l.Verifier, format.LinkAuthMessage(format.LinkID(id), [32]byte(req.Challenge)), req.Signature) {
		ok = false
	}
	if !ok {
		if err := s.loginFailed(ctx, keys); err != nil {
			return err
		}
		s.log.Info("link open failed", "client", keys[1])
		return errLinkProof
	}
	if err := s.meta.SetLoginFailures(ctx, name, 0, time.Time{}); err != nil {
		return internalError("link open: failures", err)
	}
	if fl, err := format.ParseLink(l.Record); err == nil && fl.UploadOnly() {
		return s.openUploadLink(w, r, l)
	}
	n, err := s.meta.Node(ctx, l.Tree, l.Node)
	if errors.Is(err, coffer.ErrNotFound) {
		return &apiError{status: http.StatusGone, code: api.CodeGone, msg: "the linked file or folder no longer exists"}
	}
	if err != nil {
		return internalError("link open: node", err)
	}
	owner, err := s.account(ctx, l.Owner)
	if err != nil {
		return err
	}
	if l, err = ls.UseLink(ctx, id, s.now()); err != nil {
		if errors.Is(err, coffer.ErrForbidden) || errors.Is(err, coffer.ErrNotFound) {
			return errLinkGone
		}
		return internalError("link open: count", err)
	}
	exp := s.now().Add(linkTokenTTL)
	writeJSON(w, http.StatusOK, api.LinkOpenResponse{
		Token: s.linkToken(id, exp), Record: l.Record, Node: n.Record,
		Owner: owner.Username, OwnerPublicKeys: owner.PublicKeys,
		Expires: unixOrZero(l.Expires), TokenExpires: exp.Unix(),
	})
	return nil
}

// linkToken returns base64url(expiry u64 || HMAC(Secret, "link token", id, expiry)).
func (s *Server) linkToken(id [16]byte, exp time.Time) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(exp.Unix()))
	m := s.mac("link token", id[:], b)
	return base64.RawURLEncoding.EncodeToString(append(b, m[:]...))
}

// linkAccess checks the request's link token and that the link still serves reads; it returns
// the link.
func (s *Server) linkAccess(r *http.Request) (metastore.Link, error) {
	ls, err := s.links()
	if err != nil {
		return metastore.Link{}, err
	}
	id, err := pathLink(r)
	if err != nil {
		return metastore.Link{}, err
	}
	unauth := &apiError{status: http.StatusUnauthorized, code: api.CodeUnauthorized, msg: "missing or expired link token"}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	raw, derr := base64.RawURLEncoding.DecodeString(tok)
	if !ok || derr != nil || len(raw) != linkTokenLen {
		return metastore.Link{}, unauth
	}
	m := s.mac("link token", id[:], raw[:8])
	if !hmac.Equal(m[:], raw[8:]) || !s.now().Before(time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)) {
		return metastore.Link{}, unauth
	}
	l, err := ls.Link(r.Context(), id)
	if err != nil {
		if errors.Is(err, coffer.ErrNotFound) {
			return l, errLinkGone
		}
		return l, internalError("link", err)
	}
	if !linkLive(l, s.now()) {
		return l, errLinkGone
	}
	return l, nil
}

// inSubtree reports whether node is root or lies below it in tree (walking live parents).
func (s *Server) inSubtree(ctx context.Context, tree coffer.TreeID, root, node coffer.NodeID) (bool, error) {
	cur := node
	for range maxLinkWalk {
		if cur == root {
			return true, nil
		}
		if cur.IsZero() {
			return false, nil
		}
		n, err := s.meta.Node(ctx, tree, cur)
		if errors.Is(err, coffer.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, internalError("link: walk", err)
		}
		cur = n.Parent
	}
	return false, nil
}

// handleLinkListing serves the listing of a folder inside a folder link's subtree, exactly as
// GET /v1/trees/{tree}/folders/{folder} serves it to the owner.
func (s *Server) handleLinkListing(w http.ResponseWriter, r *http.Request) error {
	l, err := s.readLinkAccess(r)
	if err != nil {
		return err
	}
	tree, err := pathTree(r)
	if err != nil {
		return err
	}
	folder, err := pathNode(r, "folder")
	if err != nil {
		return err
	}
	if tree != l.Tree {
		return errNotFound("tree")
	}
	if ok, err := s.inSubtree(r.Context(), tree, l.Node, folder); err != nil || !ok {
		return cmpErr(err, errNotFound("folder"))
	}
	if folder == l.Node {
		n, err := s.meta.Node(r.Context(), tree, folder)
		if err != nil || n.Kind != uint8(format.KindFolder) {
			return errNotFound("folder")
		}
	}
	return s.handleListing(w, r, &metastore.Session{Account: l.Owner})
}

// handleLinkBlob serves a blob referenced by a live file inside the link's subtree. A blob packs
// chunks of several files, so the visitor may receive ciphertext of files outside the subtree;
// it holds no key for them.
func (s *Server) handleLinkBlob(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	l, err := s.readLinkAccess(r)
	if err != nil {
		return err
	}
	id, err := coffer.ParseBlobID(r.PathValue("id"))
	if err != nil {
		return errBadRequest("path: %v", err)
	}
	ls, err := s.links()
	if err != nil {
		return err
	}
	nodes, err := ls.LinkBlobNodes(ctx, l.Tree, id)
	if err != nil {
		return internalError("link blob: nodes", err)
	}
	allowed := false
	for _, n := range nodes {
		ok, err := s.inSubtree(ctx, l.Tree, l.Node, n)
		if err != nil {
			return err
		}
		if ok {
			allowed = true
			break
		}
	}
	if !allowed {
		return errNotFound("blob")
	}
	return s.handleBlobGet(w, r, &metastore.Session{Account: l.Owner})
}

// cmpErr returns err if non-nil, else alt.
func cmpErr(err error, alt *apiError) error {
	if err != nil {
		return err
	}
	return alt
}
