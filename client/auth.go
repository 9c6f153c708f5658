package client

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/tree"
)

// SignupOptions are the inputs of Signup.
type SignupOptions struct {
	Username string
	Password []byte
	Invite   string
	Device   string
}

// Signup creates an account (keys, bundle, root and trash folders) and logs in.
func Signup(ctx context.Context, cfg Config, opts SignupOptions) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := format.ValidateUsername(opts.Username); err != nil {
		return nil, fmt.Errorf("client: signup: %w", err)
	}
	if len(opts.Password) == 0 {
		return nil, fmt.Errorf("client: signup: empty password: %w", coffer.ErrInvalid)
	}
	tr, err := newTransport(cfg.Server, cfg.HTTPClient, cfg.Logger)
	if err != nil {
		return nil, err
	}
	kdf := cfg.newKDF()
	if err := kdf.Check(cfg.MinKDF); err != nil {
		return nil, fmt.Errorf("client: signup: password parameters: %w", err)
	}
	acct := coffer.NewAccountID()
	mk := format.NewMasterKey()
	lk := format.DerivePasswordKeys(opts.Password, kdf)
	rlk := format.DeriveRecoveryKeys(mk.RecoveryKey())
	bundle := format.NewBundle(acct)
	signer := bundle.SigningKey()

	// First commit: the root and trash folders at top level.
	now := time.Now()
	tw := bundle.TreeKey.WrapKey()
	var recs []api.CommitRecord
	var ops []tree.Op
	for _, f := range []struct {
		name string
		role format.Role
	}{{"root", format.RoleRoot}, {"trash", format.RoleTrash}} {
		id := coffer.NewNodeID()
		body := &format.Body{Name: f.name, MTime: now.UnixNano(), Mode: 0o755, Role: f.role}
		rec, err := format.SealRecord(format.KindFolder, id, coffer.NodeID{}, 1, [32]byte{},
			format.NewNodeKey(), tw, body, signer)
		if err != nil {
			return nil, fmt.Errorf("client: signup: %w", err)
		}
		recs = append(recs, api.CommitRecord{Record: rec.Marshal()})
		ops = append(ops, tree.Op{Node: id, Hash: rec.Hash()})
	}
	res, err := tree.Apply(emptySource{}, ops)
	if err != nil {
		return nil, fmt.Errorf("client: signup: %w", err)
	}
	head := &format.Head{Tree: bundle.Tree, Version: 1, StateRoot: res.StateRoot, OpsHash: res.OpsHash,
		Time: now.UnixMilli()}
	head.Sign(signer)

	req := api.SignupRequest{
		Username:          opts.Username,
		Invite:            opts.Invite,
		Account:           acct,
		KDF:               kdfToAPI(kdf),
		LoginKey:          lk.Login.Public().(ed25519.PublicKey),
		MasterKey:         format.SealMasterKey(mk, format.PurposePassword, acct, kdf, lk.Wrap),
		RecoveryLoginKey:  rlk.Login.Public().(ed25519.PublicKey),
		RecoveryMasterKey: format.SealMasterKey(mk, format.PurposeRecovery, acct, format.KDFParams{}, rlk.Wrap),
		Bundle:            bundle.Seal(mk),
		BundleGeneration:  bundle.Generation,
		PublicKeys:        bundle.PublicKeys(opts.Username).Marshal(),
		Tree:              bundle.Tree,
		Commit:            api.CommitRequest{BaseVersion: 0, Head: head.Marshal(), Records: recs},
		Device:            opts.Device,
	}
	var resp api.LoginResponse
	if err := tr.json(ctx, "POST", "/v1/signup", &req, &resp, false, true); err != nil {
		return nil, fmt.Errorf("client: signup: %w", err)
	}
	// Remember the first head, so the server cannot roll it back later.
	st, err := openState(cfg.StateDir, acct)
	if err != nil {
		return nil, err
	}
	if err := st.rememberHead(head); err != nil {
		return nil, err
	}
	if resp.Token == "" {
		return nil, fmt.Errorf("client: signup: no session token in the answer: %w", coffer.ErrCorrupt)
	}
	c, err := unlock(ctx, cfg, tr, opts.Username, resp.Session, resp.Token, mk, &resp.Account, acct, st)
	if err != nil {
		revokeQuietly(tr, resp.Token)
		return nil, fmt.Errorf("client: signup: %w", err)
	}
	return c, nil
}

// emptySource is the state before a tree's first commit (empty buckets hash to zero).
type emptySource struct{}

func (emptySource) Children(coffer.NodeID) ([]format.Entry, error) { return nil, nil }
func (emptySource) Bucket(uint8) ([]format.FolderSummary, error)   { return nil, nil }
func (emptySource) Buckets() (*[256][32]byte, error)               { return &[256][32]byte{}, nil }

func kdfToAPI(k format.KDFParams) api.KDF {
	return api.KDF{Time: k.Time, MemoryKiB: k.MemoryKiB, Threads: k.Threads, Salt: k.Salt[:]}
}

// kdfFromAPI converts and checks the parameters a server offers against min, before any
// Argon2id run, so a downgraded server cannot make the password cheap to guess.
func kdfFromAPI(k api.KDF, min format.KDFParams) (format.KDFParams, error) {
	if len(k.Salt) != 16 {
		return format.KDFParams{}, fmt.Errorf("client: server offered a %d-byte password salt, want 16: %w", len(k.Salt), coffer.ErrInvalid)
	}
	p := format.KDFParams{Time: k.Time, MemoryKiB: k.MemoryKiB, Threads: k.Threads, Salt: [16]byte(k.Salt)}
	if err := p.Check(min); err != nil {
		return format.KDFParams{}, fmt.Errorf("client: refusing the server's password parameters (too weak: possible downgrade attack): %w", err)
	}
	return p, nil
}

// prelogin asks for the account ID, KDF parameters and a fresh challenge.
func prelogin(ctx context.Context, tr *transport, username string, recovery bool) (*api.PreloginResponse, [32]byte, error) {
	var pre api.PreloginResponse
	if err := tr.json(ctx, "POST", "/v1/login/start", &api.PreloginRequest{Username: username, Recovery: recovery}, &pre, true, true); err != nil {
		return nil, [32]byte{}, err
	}
	if len(pre.Challenge) != 32 {
		return nil, [32]byte{}, fmt.Errorf("client: login: challenge of %d bytes: %w", len(pre.Challenge), coffer.ErrCorrupt)
	}
	return &pre, [32]byte(pre.Challenge), nil
}

// Login logs in with a password. A wrong password and an unknown user give the same error
// (ErrLoginFailed). A server offering password parameters weaker than Config.MinKDF is refused
// before Argon2id runs.
func Login(ctx context.Context, cfg Config, username string, password []byte, device string) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := format.ValidateUsername(username); err != nil {
		return nil, fmt.Errorf("client: login: %w", err)
	}
	tr, err := newTransport(cfg.Server, cfg.HTTPClient, cfg.Logger)
	if err != nil {
		return nil, err
	}
	pre, _, err := prelogin(ctx, tr, username, false)
	if err != nil {
		return nil, fmt.Errorf("client: login: %w", err)
	}
	kdf, err := kdfFromAPI(pre.KDF, cfg.MinKDF)
	if err != nil {
		return nil, err
	}
	lk := format.DerivePasswordKeys(password, kdf)
	return loginWithKeys(ctx, cfg, tr, username, lk, device, nil, pre)
}

// loginWithKeys runs the challenge-response with password-derived keys and unlocks the account.
// pre is the prelogin answer whose challenge to use (nil: ask for one).
func loginWithKeys(ctx context.Context, cfg Config, tr *transport, username string, lk *format.LoginKeys,
	device string, st *stateStore, pre *api.PreloginResponse) (*Client, error) {
	if pre == nil {
		var err error
		if pre, _, err = prelogin(ctx, tr, username, false); err != nil {
			return nil, fmt.Errorf("client: login: %w", err)
		}
	}
	chal := [32]byte(pre.Challenge)
	resp, err := loginFinish(ctx, tr, username, pre.Account, chal, lk, format.ProofLogin, false, device)
	if err != nil {
		return nil, err
	}
	mk, err := format.OpenMasterKey(resp.MasterKey, format.PurposePassword, pre.Account, lk.Wrap)
	if err != nil {
		revokeQuietly(tr, resp.Token)
		return nil, fmt.Errorf("client: login: master key envelope: %w", err)
	}
	c, err := unlock(ctx, cfg, tr, username, resp.Session, resp.Token, mk, &resp.Account, pre.Account, st)
	if err != nil {
		revokeQuietly(tr, resp.Token)
		return nil, err
	}
	return c, nil
}

func loginFinish(ctx context.Context, tr *transport, username string, acct coffer.AccountID, chal [32]byte,
	lk *format.LoginKeys, purpose uint8, recovery bool, device string) (*api.LoginResponse, error) {
	sig := ed25519.Sign(lk.Login, format.LoginMessage(acct, username, chal, purpose))
	var resp api.LoginResponse
	req := api.LoginRequest{Username: username, Challenge: chal[:], Signature: sig, Recovery: recovery, Device: device}
	if err := tr.json(ctx, "POST", "/v1/login/finish", &req, &resp, false, true); err != nil {
		return nil, fmt.Errorf("client: login: %w", err)
	}
	if resp.Token == "" {
		return nil, fmt.Errorf("client: login: empty session token: %w", coffer.ErrCorrupt)
	}
	return &resp, nil
}

// revokeQuietly ends a session whose keys failed verification (best effort).
func revokeQuietly(tr *transport, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t2 := &transport{base: tr.base, hc: tr.hc, log: tr.log, attempts: 1, token: token}
	_ = t2.json(ctx, "POST", "/v1/logout", nil, nil, false, false)
}

// unlock verifies the account's key material served by the server and builds the Client:
// the bundle opens under mk and is for this account and not older than the generation this
// device saw; the public key record is for this account and user and matches the bundle.
func unlock(ctx context.Context, cfg Config, tr *transport, username, sessionID, token string, mk format.MasterKey,
	info *api.AccountInfo, acct coffer.AccountID, st *stateStore) (*Client, error) {
	if info.Account != acct {
		return nil, fmt.Errorf("client: login: account record is for another account: %w", coffer.ErrAuth)
	}
	if st == nil {
		var err error
		if st, err = openState(cfg.StateDir, acct); err != nil {
			return nil, err
		}
	}
	b, err := format.OpenBundle(info.Bundle, mk, acct)
	if err != nil {
		return nil, fmt.Errorf("client: login: key bundle: %w", err)
	}
	if b.Generation != info.BundleGeneration {
		return nil, fmt.Errorf("client: login: key bundle generation %d, server says %d: %w", b.Generation, info.BundleGeneration, coffer.ErrAuth)
	}
	if seen := st.bundleGeneration(); b.Generation < seen {
		return nil, fmt.Errorf("client: login: key bundle generation %d is older than generation %d seen before: %w", b.Generation, seen, coffer.ErrRollback)
	}
	pub, err := format.ParsePublicKeys(info.PublicKeys)
	if err != nil {
		return nil, fmt.Errorf("client: login: public keys: %w", err)
	}
	if pub.Account != acct || pub.Username != username {
		return nil, fmt.Errorf("client: login: public keys are for another account: %w", coffer.ErrAuth)
	}
	if err := pub.Matches(b); err != nil {
		return nil, fmt.Errorf("client: login: public keys do not match the key bundle: %w", err)
	}
	if b.Tree != info.Tree {
		return nil, fmt.Errorf("client: login: the server names another tree than the key bundle: %w", coffer.ErrAuth)
	}
	if err := st.rememberBundleGeneration(b.Generation); err != nil {
		return nil, err
	}
	shares, err := newShareSet(b, cfg.StateDir, acct)
	if err != nil {
		return nil, err
	}
	tr.setToken(token)
	signer := b.SigningKey()
	c := &Client{
		cfg: cfg, log: cfg.Logger, http: tr,
		username: username, account: acct, sessionID: sessionID, mk: mk,
		bundle: b, signer: signer, signPub: [32]byte(signer.Public().(ed25519.PublicKey)), pub: pub,
		tree: b.Tree, treeWrap: b.TreeKey.WrapKey(), state: st, treeCache: &treeCache{}, shares: shares,
		batchFiles: 4000, batchChunks: 200_000, batchEvery: 8 * time.Second,
	}
	if cfg.StateDir != "" {
		if err := c.save(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// LoginRecovery logs in with the recovery key and sets newPassword.
func LoginRecovery(ctx context.Context, cfg Config, username string, rk format.RecoveryKey, newPassword []byte, device string) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := format.ValidateUsername(username); err != nil {
		return nil, fmt.Errorf("client: recovery: %w", err)
	}
	if len(newPassword) == 0 {
		return nil, fmt.Errorf("client: recovery: empty new password: %w", coffer.ErrInvalid)
	}
	tr, err := newTransport(cfg.Server, cfg.HTTPClient, cfg.Logger)
	if err != nil {
		return nil, err
	}
	rlk := format.DeriveRecoveryKeys(rk)
	pre, chal, err := prelogin(ctx, tr, username, true)
	if err != nil {
		return nil, fmt.Errorf("client: recovery: %w", err)
	}
	resp, err := loginFinish(ctx, tr, username, pre.Account, chal, rlk, format.ProofRecover, true, device)
	if err != nil {
		return nil, err
	}
	mk, err := format.OpenMasterKey(resp.MasterKey, format.PurposeRecovery, pre.Account, rlk.Wrap)
	if err != nil {
		revokeQuietly(tr, resp.Token)
		return nil, fmt.Errorf("client: recovery: master key envelope: %w", err)
	}
	c, err := unlock(ctx, cfg, tr, username, resp.Session, resp.Token, mk, &resp.Account, pre.Account, nil)
	if err != nil {
		revokeQuietly(tr, resp.Token)
		return nil, err
	}
	if err := c.setPassword(ctx, rlk, format.ProofRecover, true, newPassword); err != nil {
		return nil, fmt.Errorf("client: recovery: set new password: %w", err)
	}
	return c, nil
}

// ChangePassword re-wraps the master key under newPassword (no file is re-encrypted). The server
// checks oldPassword through a signed challenge.
func (c *Client) ChangePassword(ctx context.Context, oldPassword, newPassword []byte) error {
	if len(newPassword) == 0 {
		return fmt.Errorf("client: passwd: empty new password: %w", coffer.ErrInvalid)
	}
	pre, _, err := prelogin(ctx, c.http, c.username, false)
	if err != nil {
		return fmt.Errorf("client: passwd: %w", err)
	}
	if pre.Account != c.account {
		return fmt.Errorf("client: passwd: server answered for another account: %w", coffer.ErrAuth)
	}
	kdf, err := kdfFromAPI(pre.KDF, c.cfg.MinKDF)
	if err != nil {
		return err
	}
	old := format.DerivePasswordKeys(oldPassword, kdf)
	if err := c.setPassword(ctx, old, format.ProofPassword, false, newPassword); err != nil {
		return fmt.Errorf("client: passwd: %w", err)
	}
	return nil
}

// setPassword proves knowledge of the current secret (proof keys) on a fresh challenge and
// installs a new password envelope and login key. Other sessions are revoked.
func (c *Client) setPassword(ctx context.Context, proof *format.LoginKeys, purpose uint8, recovery bool, newPassword []byte) error {
	kdf := c.cfg.newKDF()
	if err := kdf.Check(c.cfg.MinKDF); err != nil {
		return fmt.Errorf("new password parameters: %w", err)
	}
	nk := format.DerivePasswordKeys(newPassword, kdf)
	_, chal, err := prelogin(ctx, c.http, c.username, recovery)
	if err != nil {
		return err
	}
	req := api.PasswordRequest{
		Challenge: chal[:],
		Signature: ed25519.Sign(proof.Login, format.LoginMessage(c.account, c.username, chal, purpose)),
		Recovery:  recovery,
		KDF:       kdfToAPI(kdf),
		LoginKey:  nk.Login.Public().(ed25519.PublicKey),
		MasterKey: format.SealMasterKey(c.mk, format.PurposePassword, c.account, kdf, nk.Wrap),
	}
	return c.http.json(ctx, "PUT", "/v1/account/password", &req, nil, false, false)
}

// Resume loads the session saved in cfg.StateDir (ErrNotLoggedIn if none) and re-verifies the
// account's keys with the server (ErrSession if the session was revoked).
func Resume(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	s, err := loadSession(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	mkb, err := hex.DecodeString(s.MasterKey)
	if err != nil || len(mkb) != 32 {
		return nil, fmt.Errorf("client: resume: session file: master key: %w", coffer.ErrCorrupt)
	}
	if cfg.Server == "" {
		cfg.Server = s.Server
	} else if strings.TrimRight(cfg.Server, "/") != s.Server {
		// Never send the token to another server.
		return nil, fmt.Errorf("client: resume: the saved session is for %s, not %s: %w", s.Server, cfg.Server, ErrNotLoggedIn)
	}
	tr, err := newTransport(cfg.Server, cfg.HTTPClient, cfg.Logger)
	if err != nil {
		return nil, err
	}
	tr.setToken(s.Token)
	var info api.AccountInfo
	if err := tr.json(ctx, "GET", "/v1/account", nil, &info, true, false); err != nil {
		return nil, fmt.Errorf("client: resume: %w", err)
	}
	return unlock(ctx, cfg, tr, s.Username, s.Session, s.Token, format.MasterKey(mkb), &info, s.Account, nil)
}

// Save persists the session to StateDir (0600). Without a StateDir it does nothing.
func (c *Client) Save() error {
	if c.cfg.StateDir == "" {
		return nil
	}
	return c.save()
}

func (c *Client) save() error {
	return saveSession(c.cfg.StateDir, &savedSession{
		Server: c.http.base, Username: c.username, Account: c.account,
		Token: c.http.getToken(), Session: c.sessionID, MasterKey: hex.EncodeToString(c.mk[:]),
	})
}

// Logout revokes the session on the server and deletes the saved session (verified state is
// kept). The local session file is removed even if the server cannot be reached.
func (c *Client) Logout(ctx context.Context) error {
	err := c.http.json(ctx, "POST", "/v1/logout", nil, nil, true, false)
	if errors.Is(err, ErrSession) {
		err = nil // already gone
	}
	if c.cfg.StateDir != "" {
		if s, lerr := loadSession(c.cfg.StateDir); lerr == nil && s.Token == c.http.getToken() {
			if rerr := os.Remove(filepath.Join(c.cfg.StateDir, sessionFile)); rerr != nil && err == nil {
				err = fmt.Errorf("client: logout: %w", rerr)
			}
		}
	}
	c.http.setToken("")
	if err != nil {
		return fmt.Errorf("client: logout: %w", err)
	}
	return nil
}

// Usage returns quota and use.
func (c *Client) Usage(ctx context.Context) (api.UsageResponse, error) {
	var u api.UsageResponse
	if err := c.http.json(ctx, "GET", "/v1/usage", nil, &u, true, false); err != nil {
		return u, fmt.Errorf("client: usage: %w", err)
	}
	return u, nil
}

// Sessions lists the account's sessions.
func (c *Client) Sessions(ctx context.Context) ([]api.SessionInfo, error) {
	var out []api.SessionInfo
	if err := c.http.json(ctx, "GET", "/v1/sessions", nil, &out, true, false); err != nil {
		return nil, fmt.Errorf("client: sessions: %w", err)
	}
	return out, nil
}

// RevokeSession revokes one session.
func (c *Client) RevokeSession(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("client: revoke: empty session id: %w", coffer.ErrInvalid)
	}
	if err := c.http.json(ctx, "DELETE", "/v1/sessions/"+url.PathEscape(id), nil, nil, true, false); err != nil {
		return fmt.Errorf("client: revoke: %w", err)
	}
	return nil
}
