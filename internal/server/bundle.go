package server

import (
	"bytes"
	"errors"
	"net/http"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

// handleBundleUpdate replaces the caller's sealed key bundle and its public-key record with the
// next generation (PUT /v1/account/bundle). The server cannot open the bundle; it checks the
// cleartext header, and that the public-key record keeps the account's identity: same account,
// username, signing and KEM keys, the new generation.
func (s *Server) handleBundleUpdate(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	var req api.BundleUpdateRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	a, err := s.account(ctx, sess.Account)
	if err != nil {
		return err
	}
	if req.Generation != a.BundleGeneration+1 {
		return &apiError{status: http.StatusConflict, code: api.CodeConflict, msg: "bundle generation is not the stored one + 1: re-read the account"}
	}
	if err := checkBundle(req.Bundle, a.ID, req.Generation); err != nil {
		return err
	}
	if len(req.PublicKeys) > maxPublicKeys {
		return errBadRequest("public_keys: longer than %d bytes", maxPublicKeys)
	}
	pk, err := format.ParsePublicKeys(req.PublicKeys)
	if err != nil {
		return errBadRequest("public_keys: %v", err)
	}
	old, err := format.ParsePublicKeys(a.PublicKeys)
	if err != nil {
		return internalError("bundle update: stored public keys", err)
	}
	switch {
	case pk.Account != a.ID || pk.Username != a.Username:
		return errBadRequest("public_keys: record is for another account or username")
	case pk.Generation != req.Generation:
		return errBadRequest("public_keys: generation %d does not match generation %d", pk.Generation, req.Generation)
	case !bytes.Equal(pk.Signing, old.Signing) || !bytes.Equal(pk.KEM, old.KEM):
		return errBadRequest("public_keys: the signing and KEM keys must not change")
	}
	err = s.meta.SetBundle(ctx, a.ID, a.BundleGeneration, req.Generation, req.Bundle, req.PublicKeys)
	switch {
	case errors.Is(err, coffer.ErrConflict):
		return &apiError{status: http.StatusConflict, code: api.CodeConflict, msg: "bundle changed meanwhile: re-read the account"}
	case err != nil:
		return internalError("bundle update", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
