package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"net/http"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

// Size bounds of client-supplied account material.
const (
	bundleHeaderLen = 28 // "CFB1" | account[16] | generation u64
	minBundleLen    = bundleHeaderLen + 12 + 16
	maxBundleLen    = 256 << 10
	maxPublicKeys   = 16 << 10
)

func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.SignupRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	pk, err := checkSignup(&req)
	if err != nil {
		return err
	}
	invite := ""
	if s.cfg.InviteOnly {
		if req.Invite == "" {
			return &apiError{status: http.StatusForbidden, code: api.CodeInviteNeeded, msg: "this server needs an invite code to sign up"}
		}
		invite = req.Invite
	}
	if _, err := s.meta.Head(ctx, req.Tree); err == nil {
		return &apiError{status: http.StatusConflict, code: api.CodeExists, msg: "tree " + req.Tree.String() + " already exists"}
	} else if !errors.Is(err, coffer.ErrNotFound) {
		return internalError("signup: head", err)
	}
	commit, err := s.validateCommit(ctx, commitTarget{tree: req.Tree, owner: req.Account, writer: pk.Signing}, &req.Commit)
	if err != nil {
		return err
	}
	acct := metastore.Account{
		ID:       req.Account,
		Username: req.Username,
		Created:  s.now(),
		Credentials: metastore.Credentials{
			KDF:               encodeKDF(req.KDF),
			LoginKey:          req.LoginKey,
			MasterKey:         req.MasterKey,
			RecoveryLoginKey:  req.RecoveryLoginKey,
			RecoveryMasterKey: req.RecoveryMasterKey,
		},
		Bundle:           req.Bundle,
		BundleGeneration: req.BundleGeneration,
		PublicKeys:       req.PublicKeys,
		Tree:             req.Tree,
		Quota:            s.cfg.DefaultQuota,
	}
	seq, err := s.meta.CreateAccount(ctx, acct, invite, *commit)
	switch {
	case errors.Is(err, coffer.ErrExist):
		return &apiError{status: http.StatusConflict, code: api.CodeExists, msg: "username or account already exists"}
	case errors.Is(err, coffer.ErrNotFound) && invite != "":
		return &apiError{status: http.StatusForbidden, code: api.CodeInviteNeeded, msg: "invite code is unknown or already used"}
	case err != nil:
		return internalError("create account", err)
	}
	s.metrics.commits.Add(1)
	s.publish(ctx, acct.ID, seq)
	token, sess, err := s.createSession(ctx, acct.ID, req.Device)
	if err != nil {
		return err
	}
	info, err := s.accountInfo(ctx, &acct)
	if err != nil {
		return err
	}
	s.log.Info("signup", "account", acct.ID.String(), "session", sess.ID[:8])
	writeJSON(w, http.StatusOK, api.LoginResponse{Token: token, Session: sess.ID, Account: info, MasterKey: acct.Credentials.MasterKey})
	return nil
}

// checkSignup validates everything in a sign-up request that needs no store access and returns
// the parsed public keys.
func checkSignup(req *api.SignupRequest) (*format.PublicKeys, error) {
	if err := format.ValidateUsername(req.Username); err != nil {
		return nil, errBadRequest("username: %v", err)
	}
	if req.Account == (coffer.AccountID{}) {
		return nil, errBadRequest("account: must not be zero")
	}
	if req.Tree == (coffer.TreeID{}) {
		return nil, errBadRequest("tree: must not be zero")
	}
	if err := checkDevice(req.Device); err != nil {
		return nil, err
	}
	if err := checkKDF(req.KDF); err != nil {
		return nil, err
	}
	if len(req.LoginKey) != ed25519.PublicKeySize {
		return nil, errBadRequest("login_key: want %d bytes, got %d", ed25519.PublicKeySize, len(req.LoginKey))
	}
	if len(req.RecoveryLoginKey) != ed25519.PublicKeySize {
		return nil, errBadRequest("recovery_login_key: want %d bytes, got %d", ed25519.PublicKeySize, len(req.RecoveryLoginKey))
	}
	if err := checkEnvelope("master_key", req.MasterKey, format.PurposePassword, req.Account, &req.KDF); err != nil {
		return nil, err
	}
	if err := checkEnvelope("recovery_master_key", req.RecoveryMasterKey, format.PurposeRecovery, req.Account, nil); err != nil {
		return nil, err
	}
	if err := checkBundle(req.Bundle, req.Account, req.BundleGeneration); err != nil {
		return nil, err
	}
	if len(req.PublicKeys) > maxPublicKeys {
		return nil, errBadRequest("public_keys: longer than %d bytes", maxPublicKeys)
	}
	pk, err := format.ParsePublicKeys(req.PublicKeys)
	if err != nil {
		return nil, errBadRequest("public_keys: %v", err)
	}
	switch {
	case pk.Account != req.Account:
		return nil, errBadRequest("public_keys: record is for another account")
	case pk.Username != req.Username:
		return nil, errBadRequest("public_keys: record is for another username")
	case pk.Generation != req.BundleGeneration:
		return nil, errBadRequest("public_keys: generation %d does not match bundle_generation %d", pk.Generation, req.BundleGeneration)
	}
	return pk, nil
}

// checkEnvelope parses a master-key envelope and checks its purpose, account and (for password
// envelopes) that it binds the KDF parameters the server will serve at prelogin.
func checkEnvelope(field string, b []byte, purpose uint8, acct coffer.AccountID, kdf *api.KDF) error {
	e, err := format.ParseMasterKeyEnvelope(b)
	if err != nil {
		return errBadRequest("%s: %v", field, err)
	}
	if e.Purpose != purpose {
		return errBadRequest("%s: envelope purpose %d, want %d", field, e.Purpose, purpose)
	}
	if e.Account != acct {
		return errBadRequest("%s: envelope is for another account", field)
	}
	if kdf != nil && (e.KDF.Time != kdf.Time || e.KDF.MemoryKiB != kdf.MemoryKiB ||
		e.KDF.Threads != kdf.Threads || !bytes.Equal(e.KDF.Salt[:], kdf.Salt)) {
		return errBadRequest("%s: envelope KDF parameters differ from kdf", field)
	}
	return nil
}

// checkBundle checks the cleartext header of a sealed key bundle: "CFB1" | account | generation.
func checkBundle(b []byte, acct coffer.AccountID, gen uint64) error {
	switch {
	case len(b) < minBundleLen || len(b) > maxBundleLen:
		return errBadRequest("bundle: length %d outside [%d, %d]", len(b), minBundleLen, maxBundleLen)
	case string(b[:4]) != "CFB1":
		return errBadRequest("bundle: bad magic")
	case coffer.AccountID(b[4:20]) != acct:
		return errBadRequest("bundle: sealed for another account")
	case gen == 0:
		return errBadRequest("bundle_generation: must be positive")
	case binary.BigEndian.Uint64(b[20:28]) != gen:
		return errBadRequest("bundle: generation differs from bundle_generation")
	}
	return nil
}

// accountInfo is the api view of an account, with its usage.
func (s *Server) accountInfo(ctx context.Context, a *metastore.Account) (api.AccountInfo, error) {
	used, _, err := s.meta.Usage(ctx, a.ID)
	if err != nil {
		return api.AccountInfo{}, internalError("usage", err)
	}
	return api.AccountInfo{
		Account:          a.ID,
		Username:         a.Username,
		Bundle:           a.Bundle,
		BundleGeneration: a.BundleGeneration,
		PublicKeys:       a.PublicKeys,
		Tree:             a.Tree,
		Quota:            a.Quota,
		Used:             used,
	}, nil
}

func (s *Server) account(ctx context.Context, id coffer.AccountID) (*metastore.Account, error) {
	a, err := s.meta.Account(ctx, id)
	if err != nil {
		// A session whose account vanished is as good as revoked.
		if errors.Is(err, coffer.ErrNotFound) {
			return nil, errUnauthorized
		}
		return nil, internalError("account", err)
	}
	return &a, nil
}

func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	a, err := s.account(r.Context(), sess.Account)
	if err != nil {
		return err
	}
	info, err := s.accountInfo(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) handlePassword(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	var req api.PasswordRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if len(req.Challenge) != 32 {
		return errBadRequest("challenge: want 32 bytes, got %d", len(req.Challenge))
	}
	if len(req.Signature) != ed25519.SignatureSize {
		return errBadRequest("signature: want 64 bytes, got %d", len(req.Signature))
	}
	if err := checkKDF(req.KDF); err != nil {
		return err
	}
	if len(req.LoginKey) != ed25519.PublicKeySize {
		return errBadRequest("login_key: want %d bytes, got %d", ed25519.PublicKeySize, len(req.LoginKey))
	}
	if err := checkEnvelope("master_key", req.MasterKey, format.PurposePassword, sess.Account, &req.KDF); err != nil {
		return err
	}
	a, err := s.account(ctx, sess.Account)
	if err != nil {
		return err
	}
	if err := s.loginBlocked(ctx, failureKeys(r, a.Username)); err != nil {
		return err
	}
	key, purpose := a.Credentials.LoginKey, format.ProofPassword
	if req.Recovery {
		key, purpose = a.Credentials.RecoveryLoginKey, format.ProofRecover
	}
	if err := s.verifyProof(ctx, r, a.ID, true, a.Username, req.Challenge, req.Signature, key, purpose); err != nil {
		return err
	}
	creds := a.Credentials
	creds.KDF = encodeKDF(req.KDF)
	creds.LoginKey = req.LoginKey
	creds.MasterKey = req.MasterKey
	if err := s.meta.SetCredentials(ctx, a.ID, creds); err != nil {
		return internalError("set credentials", err)
	}
	if !req.KeepSessions {
		defer s.sessions.drop(a.ID, "", sess.ID) // after the store's delete
		if err := s.meta.DeleteSessions(ctx, a.ID, sess.ID); err != nil {
			return internalError("revoke sessions", err)
		}
	}
	s.log.Info("password changed", "account", a.ID.String(), "recovery", req.Recovery, "kept_sessions", req.KeepSessions)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	list, err := s.meta.ListSessions(r.Context(), sess.Account)
	if err != nil {
		return internalError("list sessions", err)
	}
	out := make([]api.SessionInfo, 0, len(list))
	for _, x := range list {
		out = append(out, api.SessionInfo{
			ID:       x.ID,
			Device:   x.Device,
			Created:  x.Created.Unix(),
			LastUsed: x.LastUsed.Unix(),
			Current:  x.ID == sess.ID,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	id := r.PathValue("id")
	if len(id) != 32 || !isLowerHex(id) {
		return errBadRequest("path: session id %q: want 32 lowercase hex digits", id)
	}
	defer s.sessions.drop(sess.Account, id, "") // after the store's delete
	err := s.meta.DeleteSession(r.Context(), sess.Account, id)
	if errors.Is(err, coffer.ErrNotFound) {
		return errNotFound("session")
	}
	if err != nil {
		return internalError("delete session", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	a, err := s.account(r.Context(), sess.Account)
	if err != nil {
		return err
	}
	used, n, err := s.meta.Usage(r.Context(), a.ID)
	if err != nil {
		return internalError("usage", err)
	}
	writeJSON(w, http.StatusOK, api.UsageResponse{Quota: a.Quota, Used: used, Blobs: n})
	return nil
}

func (s *Server) handleUserKeys(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	name := r.PathValue("username")
	if err := format.ValidateUsername(name); err != nil {
		return errBadRequest("path: username: %v", err)
	}
	a, err := s.meta.AccountByName(r.Context(), name)
	if errors.Is(err, coffer.ErrNotFound) {
		return errNotFound("user")
	}
	if err != nil {
		return internalError("account by name", err)
	}
	writeJSON(w, http.StatusOK, api.UserKeysResponse{Account: a.ID, PublicKeys: a.PublicKeys})
	return nil
}
