package server

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

// Login challenge and rate-limit parameters.
const (
	challengeTTL     = 120 * time.Second
	maxUsedChallenge = 1 << 20 // refuse new logins rather than grow the used-set without bound
	lockoutFrom      = 5       // the 5th consecutive failure starts the back-off
	maxLockout       = 15 * time.Minute
	failureMemory    = 24 * time.Hour // a failure counter older than this starts again from zero
	sessionTouchStep = time.Minute    // LastUsed/Expires are written at most this often
	maxDeviceLen     = 100
)

// authedHandler is a handler behind a valid session.
type authedHandler func(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error

// public adapts an error-returning handler.
func (s *Server) public(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, r, err)
		}
	})
}

// authed requires "Authorization: Bearer <token>" naming a live session, slides its expiry and
// calls h.
func (s *Server) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.authenticate(r)
		if err == nil {
			err = h(w, r, sess)
		}
		if err != nil {
			writeError(w, r, err)
		}
	})
}

func (s *Server) authenticate(r *http.Request) (*metastore.Session, error) {
	ctx := r.Context()
	authz := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok || len(token) != 43 {
		return nil, errUnauthorized
	}
	th := tokenHash(token)
	now := s.now()
	sess, ok := s.sessions.get(th, now)
	if !ok {
		var err error
		gen := s.sessions.begin()
		sess, err = s.meta.SessionByToken(ctx, th)
		if errors.Is(err, coffer.ErrNotFound) {
			return nil, errUnauthorized
		}
		if err != nil {
			return nil, internalError("session lookup", err)
		}
		s.sessions.put(sess, now, gen)
	}
	if !now.Before(sess.Expires) {
		if err := s.meta.DeleteSession(ctx, sess.Account, sess.ID); err != nil && !errors.Is(err, coffer.ErrNotFound) {
			s.log.Warn("delete expired session", "err", err)
		}
		s.sessions.drop(sess.Account, sess.ID, "")
		return nil, errUnauthorized
	}
	if now.Sub(sess.LastUsed) >= sessionTouchStep {
		sess.LastUsed, sess.Expires = now, now.Add(s.cfg.SessionTTL)
		if err := s.meta.TouchSession(ctx, sess.ID, sess.LastUsed, sess.Expires); err != nil {
			return nil, internalError("touch session", err)
		}
		s.sessions.update(sess)
	}
	if info := infoFrom(ctx); info != nil {
		info.session = sess.ID[:8]
	}
	return &sess, nil
}

func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// createSession makes a new session for acct and returns its token (never stored).
func (s *Server) createSession(ctx context.Context, acct coffer.AccountID, device string) (string, metastore.Session, error) {
	var tok [32]byte
	var id [16]byte
	rand.Read(tok[:])
	rand.Read(id[:])
	token := base64.RawURLEncoding.EncodeToString(tok[:])
	now := s.now()
	sess := metastore.Session{
		ID:        hex.EncodeToString(id[:]),
		Account:   acct,
		TokenHash: tokenHash(token),
		Device:    device,
		Created:   now,
		LastUsed:  now,
		Expires:   now.Add(s.cfg.SessionTTL),
	}
	if err := s.meta.CreateSession(ctx, sess); err != nil {
		return "", sess, internalError("create session", err)
	}
	return token, sess, nil
}

// checkDevice validates a client-chosen device label.
func checkDevice(d string) error {
	if len(d) > maxDeviceLen {
		return errBadRequest("device: longer than %d bytes", maxDeviceLen)
	}
	for _, r := range d {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return errBadRequest("device: must be printable UTF-8")
		}
	}
	return nil
}

// ---- secrets derived from Config.Secret ----

// mac is HMAC-SHA256(Secret, label || 0 || (u16 len || part)*).
func (s *Server) mac(label string, parts ...[]byte) [32]byte {
	m := hmac.New(sha256.New, s.cfg.Secret)
	m.Write([]byte(label))
	m.Write([]byte{0})
	for _, p := range parts {
		m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(p))))
		m.Write(p)
	}
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// newChallenge returns random[12] || expiry u32 || HMAC(Secret, "challenge", username, first 16)[:16].
func (s *Server) newChallenge(username string) [32]byte {
	var c [32]byte
	rand.Read(c[:12])
	binary.BigEndian.PutUint32(c[12:16], uint32(s.now().Add(challengeTTL).Unix()))
	m := s.mac("challenge", []byte(username), c[:16])
	copy(c[16:], m[:16])
	return c
}

// useChallenge checks that c was issued for username, has not expired and was not used before,
// and marks it used. A challenge is spent even when the login it carries then fails.
func (s *Server) useChallenge(ctx context.Context, username string, c []byte) (bool, error) {
	if len(c) != 32 {
		return false, nil
	}
	m := s.mac("challenge", []byte(username), c[:16])
	if !hmac.Equal(m[:16], c[16:]) {
		return false, nil
	}
	exp := time.Unix(int64(binary.BigEndian.Uint32(c[12:16])), 0)
	now := s.now()
	if now.After(exp) {
		return false, nil
	}
	if s.cfg.Challenges != nil {
		fresh, err := s.cfg.Challenges.SpendChallenge(ctx, [32]byte(c), exp)
		if err != nil {
			return false, internalError("spend challenge", err)
		}
		return fresh, nil
	}
	return s.challenges.use([32]byte(c), exp, now), nil
}

// challengeSet remembers spent challenges until they expire. It is per process: a multi-node
// deployment sets Config.Challenges (a set shared by every node) instead.
type challengeSet struct {
	mu        sync.Mutex
	used      map[[32]byte]time.Time
	nextPrune time.Time
}

func newChallengeSet() *challengeSet { return &challengeSet{used: map[[32]byte]time.Time{}} }

func (cs *challengeSet) use(c [32]byte, exp, now time.Time) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.used[c]; ok {
		return false
	}
	if len(cs.used) >= 1024 && !now.Before(cs.nextPrune) {
		// At most one sweep per 10 s, so a flood of logins costs linear time.
		cs.nextPrune = now.Add(10 * time.Second)
		for k, e := range cs.used {
			if now.After(e) {
				delete(cs.used, k)
			}
		}
	}
	if len(cs.used) >= maxUsedChallenge {
		return false
	}
	cs.used[c] = exp
	return true
}

// fakeAccount is the stable answer to a prelogin for an unknown username.
func (s *Server) fakePrelogin(username string) (coffer.AccountID, api.KDF) {
	a := s.mac("fake account", []byte(username))
	salt := s.mac("fake salt", []byte(username))
	d := format.DefaultKDF()
	return coffer.AccountID(a[:16]), api.KDF{Time: d.Time, MemoryKiB: d.MemoryKiB, Threads: d.Threads, Salt: salt[:16]}
}

// ---- KDF encoding in metastore.Credentials.KDF: t u32 | m u32 | p u8 | salt[16] ----

const kdfLen = 25

func encodeKDF(k api.KDF) []byte {
	b := binary.BigEndian.AppendUint32(nil, k.Time)
	b = binary.BigEndian.AppendUint32(b, k.MemoryKiB)
	b = append(b, k.Threads)
	return append(b, k.Salt...)
}

func decodeKDF(b []byte) (api.KDF, error) {
	if len(b) != kdfLen {
		return api.KDF{}, fmt.Errorf("server: stored kdf: %d bytes: %w", len(b), coffer.ErrCorrupt)
	}
	return api.KDF{
		Time:      binary.BigEndian.Uint32(b[0:4]),
		MemoryKiB: binary.BigEndian.Uint32(b[4:8]),
		Threads:   b[8],
		Salt:      append([]byte(nil), b[9:25]...),
	}, nil
}

// checkKDF validates the shape of client-chosen KDF parameters. The server does not enforce
// minimums (the client does); it only refuses nonsense.
func checkKDF(k api.KDF) error {
	switch {
	case k.Time == 0:
		return errBadRequest("kdf.time: must be positive")
	case k.MemoryKiB == 0:
		return errBadRequest("kdf.memory_kib: must be positive")
	case k.Threads == 0:
		return errBadRequest("kdf.threads: must be positive")
	case len(k.Salt) != 16:
		return errBadRequest("kdf.salt: want 16 bytes, got %d", len(k.Salt))
	}
	return nil
}

// ---- login rate limiting ----

// clientKey is the rate-limit key of the client address: the IP, or its /64 for IPv6.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "ip:" + host
	}
	if ip.To4() == nil {
		return "ip:" + ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return "ip:" + ip.String()
}

func failureKeys(r *http.Request, username string) []string {
	return []string{"user:" + username, clientKey(r)}
}

// loginBlocked returns a 429 error if any key is in its back-off window.
func (s *Server) loginBlocked(ctx context.Context, keys []string) error {
	now := s.now()
	var wait time.Duration
	for _, k := range keys {
		n, last, err := s.meta.LoginFailures(ctx, k)
		if err != nil {
			return internalError("login failures", err)
		}
		if n < lockoutFrom {
			continue
		}
		d := maxLockout
		if n-lockoutFrom < 20 {
			d = min(time.Duration(1)<<(n-lockoutFrom)*time.Second, maxLockout)
		}
		if left := last.Add(d).Sub(now); left > wait {
			wait = left
		}
	}
	if wait <= 0 {
		return nil
	}
	secs := int((wait + time.Second - 1) / time.Second)
	return &apiError{status: http.StatusTooManyRequests, code: api.CodeRateLimited,
		msg: fmt.Sprintf("too many failed attempts; retry in %d s", secs), retryAfter: secs}
}

// loginFailed counts one more consecutive failure for every key.
func (s *Server) loginFailed(ctx context.Context, keys []string) error {
	now := s.now()
	for _, k := range keys {
		n, last, err := s.meta.LoginFailures(ctx, k)
		if err != nil {
			return internalError("login failures", err)
		}
		if now.Sub(last) > failureMemory {
			n = 0
		}
		if err := s.meta.SetLoginFailures(ctx, k, n+1, now); err != nil {
			return internalError("login failures", err)
		}
	}
	return nil
}

// verifyProof checks a challenge answer signed with loginKey for account acctID. known is false
// for an unknown username (acctID and loginKey are then the fake ones, so that the failure costs
// the same work). Every failure is the same login_failed error, counted against the username and
// the client address; success clears the username's counter.
func (s *Server) verifyProof(ctx context.Context, r *http.Request, acctID coffer.AccountID, known bool,
	username string, challenge, sig, loginKey []byte, purpose uint8) error {
	keys := failureKeys(r, username)
	ok, err := s.useChallenge(ctx, username, challenge)
	if err != nil {
		return err
	}
	if len(loginKey) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && len(challenge) == 32 {
		msg := format.LoginMessage(acctID, username, [32]byte(challenge), purpose)
		ok = ed25519.Verify(ed25519.PublicKey(loginKey), msg, sig) && ok
	} else {
		ok = false
	}
	if !ok || !known {
		if err := s.loginFailed(ctx, keys); err != nil {
			return err
		}
		s.log.Info("login failed", "username", username, "client", keys[1])
		return errLoginFailed
	}
	// Clear the username's counter, without a write (a serialised transaction with SQLite) when
	// there is nothing to clear: the usual case.
	n, _, err := s.meta.LoginFailures(ctx, keys[0])
	if err != nil {
		return internalError("login failures", err)
	}
	if n == 0 {
		return nil
	}
	if err := s.meta.SetLoginFailures(ctx, keys[0], 0, time.Time{}); err != nil {
		return internalError("login failures", err)
	}
	return nil
}

// ---- handlers ----

func (s *Server) handleLoginStart(w http.ResponseWriter, r *http.Request) error {
	var req api.PreloginRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if err := format.ValidateUsername(req.Username); err != nil {
		return errBadRequest("username: %v", err)
	}
	acct, err := s.meta.AccountByName(r.Context(), req.Username)
	var resp api.PreloginResponse
	switch {
	case errors.Is(err, coffer.ErrNotFound):
		resp.Account, resp.KDF = s.fakePrelogin(req.Username)
	case err != nil:
		return internalError("account by name", err)
	default:
		resp.Account = acct.ID
		if resp.KDF, err = decodeKDF(acct.Credentials.KDF); err != nil {
			return internalError("prelogin", err)
		}
	}
	c := s.newChallenge(req.Username)
	resp.Challenge = c[:]
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) handleLoginFinish(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.LoginRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if err := format.ValidateUsername(req.Username); err != nil {
		return errBadRequest("username: %v", err)
	}
	if len(req.Challenge) != 32 {
		return errBadRequest("challenge: want 32 bytes, got %d", len(req.Challenge))
	}
	if len(req.Signature) != ed25519.SignatureSize {
		return errBadRequest("signature: want 64 bytes, got %d", len(req.Signature))
	}
	if err := checkDevice(req.Device); err != nil {
		return err
	}
	if err := s.loginBlocked(ctx, failureKeys(r, req.Username)); err != nil {
		return err
	}
	var acct *metastore.Account
	acctID, _ := s.fakePrelogin(req.Username)
	loginKey, purpose := fakeLoginKey(s, req.Username), format.ProofLogin
	a, err := s.meta.AccountByName(ctx, req.Username)
	switch {
	case err == nil:
		acct, acctID = &a, a.ID
		loginKey = a.Credentials.LoginKey
		if req.Recovery {
			loginKey = a.Credentials.RecoveryLoginKey
		}
	case !errors.Is(err, coffer.ErrNotFound):
		return internalError("account by name", err)
	}
	if req.Recovery {
		purpose = format.ProofRecover
	}
	if err := s.verifyProof(ctx, r, acctID, acct != nil, req.Username, req.Challenge, req.Signature, loginKey, purpose); err != nil {
		return err
	}
	token, sess, err := s.createSession(ctx, acct.ID, req.Device)
	if err != nil {
		return err
	}
	info, err := s.accountInfo(ctx, acct)
	if err != nil {
		return err
	}
	envelope := acct.Credentials.MasterKey
	if req.Recovery {
		envelope = acct.Credentials.RecoveryMasterKey
	}
	s.log.Info("login", "account", acct.ID.String(), "session", sess.ID[:8], "recovery", req.Recovery)
	writeJSON(w, http.StatusOK, api.LoginResponse{Token: token, Session: sess.ID, Account: info, MasterKey: envelope})
	return nil
}

// fakeLoginKey is a stable public key for an unknown username, so that a failed login costs the
// same signature check whether or not the account exists.
func fakeLoginKey(s *Server, username string) []byte {
	seed := s.mac("fake login key", []byte(username))
	return ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	defer s.sessions.drop(sess.Account, sess.ID, "") // after the store's delete
	if err := s.meta.DeleteSession(r.Context(), sess.Account, sess.ID); err != nil && !errors.Is(err, coffer.ErrNotFound) {
		return internalError("logout", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
