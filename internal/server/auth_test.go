package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"coffer/api"
	"coffer/format"
)

func TestSignupLoginLogout(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")

	// The signup session works.
	var info api.AccountInfo
	if st, ae := e.call("GET", "/v1/account", u.token, nil, &info); st != 200 {
		t.Fatalf("account: %d %+v", st, ae)
	}
	if info.Username != "alice" || info.Account != u.acct || info.Tree != u.tree() || info.BundleGeneration != 1 {
		t.Fatalf("account info: %+v", info)
	}
	b, err := format.OpenBundle(info.Bundle, u.mk, u.acct)
	if err != nil || b.Tree != u.tree() {
		t.Fatalf("bundle does not open: %v", err)
	}

	// Password login returns the password envelope, which unwraps the master key.
	resp, st, ae := u.login("laptop")
	if st != 200 {
		t.Fatalf("login: %d %+v", st, ae)
	}
	keys := format.DerivePasswordKeys(u.password, u.kdf)
	mk, err := format.OpenMasterKey(resp.MasterKey, format.PurposePassword, u.acct, keys.Wrap)
	if err != nil || mk != u.mk {
		t.Fatalf("master key does not unwrap: %v", err)
	}
	if resp.Token == u.token || len(resp.Token) != 43 || len(resp.Session) != 32 {
		t.Fatalf("bad session: %+v", resp)
	}

	// Sessions: two, the current one flagged.
	var list []api.SessionInfo
	if st, ae := e.call("GET", "/v1/sessions", resp.Token, nil, &list); st != 200 {
		t.Fatalf("sessions: %d %+v", st, ae)
	}
	if len(list) != 2 {
		t.Fatalf("sessions: %+v", list)
	}
	for _, s := range list {
		if s.Current != (s.ID == resp.Session) {
			t.Fatalf("current flag wrong: %+v", s)
		}
		if s.ID == resp.Session && s.Device != "laptop" {
			t.Fatalf("device: %+v", s)
		}
	}

	// Revoke the signup session from the new one: its token is dead.
	if st, ae := e.call("DELETE", "/v1/sessions/"+u.session, resp.Token, nil, nil); st != 204 {
		t.Fatalf("revoke: %d %+v", st, ae)
	}
	st, ae = e.call("GET", "/v1/account", u.token, nil, nil)
	wantErr(t, st, ae, 401, api.CodeUnauthorized)
	st, ae = e.call("DELETE", "/v1/sessions/"+u.session, resp.Token, nil, nil)
	wantErr(t, st, ae, 404, api.CodeNotFound)

	// Logout kills the token.
	if st, ae := e.call("POST", "/v1/logout", resp.Token, nil, nil); st != 204 {
		t.Fatalf("logout: %d %+v", st, ae)
	}
	st, ae = e.call("GET", "/v1/account", resp.Token, nil, nil)
	wantErr(t, st, ae, 401, api.CodeUnauthorized)

	// No and malformed tokens.
	st, ae = e.call("GET", "/v1/account", "", nil, nil)
	wantErr(t, st, ae, 401, api.CodeUnauthorized)
	st, ae = e.call("GET", "/v1/account", strings.Repeat("A", 43), nil, nil)
	wantErr(t, st, ae, 401, api.CodeUnauthorized)

	// Nothing secret reached the log.
	logs := e.logs.String()
	for _, secret := range []string{resp.Token, u.token, string(u.password)} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains a secret")
		}
	}
	mustContain(t, logs, `"route":"POST /v1/login/finish"`)
}

func TestSignupValidation(t *testing.T) {
	e := newEnv(t)
	e.signup("alice")

	_, req := e.newUser("alice")
	st, ae := e.call("POST", "/v1/signup", "", req, nil)
	wantErr(t, st, ae, 409, api.CodeExists)

	cases := map[string]func(r *api.SignupRequest){
		"username":    func(r *api.SignupRequest) { r.Username = "Bad Name" },
		"login_key":   func(r *api.SignupRequest) { r.LoginKey = r.LoginKey[:31] },
		"master_key":  func(r *api.SignupRequest) { r.MasterKey = r.RecoveryMasterKey },
		"public_keys": func(r *api.SignupRequest) { r.PublicKeys[len(r.PublicKeys)-1] ^= 1 },
		"bundle":      func(r *api.SignupRequest) { r.Bundle = r.Bundle[:10] },
		"kdf.salt":    func(r *api.SignupRequest) { r.KDF.Salt = r.KDF.Salt[:8] },
	}
	for field, mod := range cases {
		_, req := e.newUser("bob")
		mod(&req)
		st, ae := e.call("POST", "/v1/signup", "", req, nil)
		wantErr(t, st, ae, 400, api.CodeBadRequest)
		mustContain(t, ae.Message, field)
	}

	// The first commit is validated like any other: a head signed by another key.
	u, req := e.newUser("bob")
	other := format.NewBundle(u.acct).SigningKey()
	h, _ := format.ParseHead(req.Commit.Head)
	h.Sign(other)
	req.Commit.Head = h.Marshal()
	st, ae = e.call("POST", "/v1/signup", "", req, nil)
	wantErr(t, st, ae, 422, api.CodeInvalidCommit)

	// Public keys of another account.
	_, req = e.newUser("carol")
	_, req2 := e.newUser("carol")
	req.PublicKeys = req2.PublicKeys
	st, ae = e.call("POST", "/v1/signup", "", req, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
}

func TestInviteOnly(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.InviteOnly = true })
	_, req := e.newUser("alice")
	st, ae := e.call("POST", "/v1/signup", "", req, nil)
	wantErr(t, st, ae, 403, api.CodeInviteNeeded)
	req.Invite = "nope"
	st, ae = e.call("POST", "/v1/signup", "", req, nil)
	wantErr(t, st, ae, 403, api.CodeInviteNeeded)

	if err := e.meta.CreateInvite(context.Background(), "abc123", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	req.Invite = "abc123"
	if st, ae := e.call("POST", "/v1/signup", "", req, nil); st != 200 {
		t.Fatalf("signup with invite: %d %+v", st, ae)
	}
	// Used once.
	_, req = e.newUser("bob")
	req.Invite = "abc123"
	st, ae = e.call("POST", "/v1/signup", "", req, nil)
	wantErr(t, st, ae, 403, api.CodeInviteNeeded)
}

func TestExpiredSession(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionTTL = time.Hour })
	u := e.signup("alice")
	// Sliding: used every 50 minutes, it lives past the TTL.
	for range 3 {
		e.clock.Add(50 * time.Minute)
		if st, ae := e.call("GET", "/v1/usage", u.token, nil, nil); st != 200 {
			t.Fatalf("usage: %d %+v", st, ae)
		}
	}
	e.clock.Add(61 * time.Minute)
	st, ae := e.call("GET", "/v1/usage", u.token, nil, nil)
	wantErr(t, st, ae, 401, api.CodeUnauthorized)
}

func TestLoginFailures(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")

	_, st, ae := u.loginWith([]byte("wrong"), "")
	wantErr(t, st, ae, 401, api.CodeLoginFailed)

	// A replayed challenge fails even with the right signature.
	var pre api.PreloginResponse
	e.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: "alice"}, &pre)
	keys := format.DerivePasswordKeys(u.password, u.kdf)
	fin := api.LoginRequest{Username: "alice", Challenge: pre.Challenge,
		Signature: ed25519.Sign(keys.Login, format.LoginMessage(u.acct, "alice", [32]byte(pre.Challenge), format.ProofLogin))}
	if st, ae := e.call("POST", "/v1/login/finish", "", fin, nil); st != 200 {
		t.Fatalf("login: %d %+v", st, ae)
	}
	st, ae = e.call("POST", "/v1/login/finish", "", fin, nil)
	wantErr(t, st, ae, 401, api.CodeLoginFailed)

	// An expired challenge fails.
	e.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: "alice"}, &pre)
	fin.Challenge = pre.Challenge
	fin.Signature = ed25519.Sign(keys.Login, format.LoginMessage(u.acct, "alice", [32]byte(pre.Challenge), format.ProofLogin))
	e.clock.Add(3 * time.Minute)
	st, ae = e.call("POST", "/v1/login/finish", "", fin, nil)
	wantErr(t, st, ae, 401, api.CodeLoginFailed)

	// Unknown user: the same error.
	e.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: "ghost"}, &pre)
	_, anyKey, _ := ed25519.GenerateKey(nil)
	st, ae = e.call("POST", "/v1/login/finish", "", api.LoginRequest{Username: "ghost", Challenge: pre.Challenge,
		Signature: ed25519.Sign(anyKey, format.LoginMessage(pre.Account, "ghost", [32]byte(pre.Challenge), format.ProofLogin))}, nil)
	wantErr(t, st, ae, 401, api.CodeLoginFailed)
}

func TestLoginLockout(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	for i := range 5 {
		_, st, ae := u.loginWith([]byte("wrong"), "")
		if i > 0 && st == 429 {
			t.Fatalf("attempt %d already locked out", i+1)
		}
		wantErr(t, st, ae, 401, api.CodeLoginFailed)
	}
	// From the 5th failure: refused before checking, even with the right password.
	resp := e.request("POST", "/v1/login/finish", "", api.LoginRequest{Username: "alice",
		Challenge: make([]byte, 32), Signature: make([]byte, 64)})
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("6th attempt: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, st, ae := u.login("")
	wantErr(t, st, ae, 429, api.CodeRateLimited)
	if ae.RetryAfter != 1 {
		t.Fatalf("retry_after %d", ae.RetryAfter)
	}
	// After the back-off the right password works and clears the username counter.
	e.clock.Add(2 * time.Second)
	if _, st, ae := u.login(""); st != 200 {
		t.Fatalf("login after back-off: %d %+v", st, ae)
	}
	n, _, err := e.meta.LoginFailures(context.Background(), "user:alice")
	if err != nil || n != 0 {
		t.Fatalf("username counter after success: %d %v", n, err)
	}
	// The per-address counter is not cleared by a success: the next failure doubles it.
	_, st, ae = u.loginWith([]byte("wrong"), "")
	wantErr(t, st, ae, 401, api.CodeLoginFailed)
	_, st, ae = u.login("")
	wantErr(t, st, ae, 429, api.CodeRateLimited)
	if ae.RetryAfter != 2 {
		t.Fatalf("retry_after %d, want 2", ae.RetryAfter)
	}
}

func TestPreloginUnknownUserIsStable(t *testing.T) {
	e := newEnv(t)
	e.signup("alice")
	get := func(name string) (api.PreloginResponse, []byte) {
		resp := e.request("POST", "/v1/login/start", "", api.PreloginRequest{Username: name})
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		var pre api.PreloginResponse
		if err := json.Unmarshal(buf.Bytes(), &pre); err != nil || resp.StatusCode != 200 {
			t.Fatalf("prelogin %s: %d %v", name, resp.StatusCode, err)
		}
		return pre, buf.Bytes()
	}
	a1, _ := get("ghost")
	a2, _ := get("ghost")
	if a1.Account != a2.Account || !bytes.Equal(a1.KDF.Salt, a2.KDF.Salt) || a1.KDF.Time != a2.KDF.Time {
		t.Fatal("fake prelogin is not stable")
	}
	if bytes.Equal(a1.Challenge, a2.Challenge) || len(a1.Challenge) != 32 {
		t.Fatal("challenges must be fresh 32-byte values")
	}
	b, _ := get("ghost2")
	if b.Account == a1.Account || bytes.Equal(b.KDF.Salt, a1.KDF.Salt) {
		t.Fatal("fake values must differ per username")
	}
	d := format.DefaultKDF()
	if a1.KDF.Time != d.Time || a1.KDF.MemoryKiB != d.MemoryKiB || a1.KDF.Threads != d.Threads || len(a1.KDF.Salt) != 16 {
		t.Fatalf("fake KDF is not the default shape: %+v", a1.KDF)
	}
	// Same JSON shape as a real account's answer.
	_, realJSON := get("alice")
	_, fakeJSON := get("ghost")
	if keysOf(t, realJSON) != keysOf(t, fakeJSON) {
		t.Fatalf("shapes differ: %s vs %s", realJSON, fakeJSON)
	}
}

func keysOf(t *testing.T, b []byte) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

// passwordRequest signs a fresh challenge with key for purpose and carries new credentials.
func (u *user) passwordRequest(proofKey ed25519.PrivateKey, purpose uint8, newPassword []byte) (api.PasswordRequest, format.KDFParams) {
	u.e.t.Helper()
	var pre api.PreloginResponse
	if st, ae := u.e.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: u.name}, &pre); st != 200 {
		u.e.t.Fatalf("prelogin: %d %+v", st, ae)
	}
	kdf := cheapKDF()
	nk := format.DerivePasswordKeys(newPassword, kdf)
	return api.PasswordRequest{
		Challenge: pre.Challenge,
		Signature: ed25519.Sign(proofKey, format.LoginMessage(u.acct, u.name, [32]byte(pre.Challenge), purpose)),
		Recovery:  purpose == format.ProofRecover,
		KDF:       apiKDF(kdf),
		LoginKey:  nk.Login.Public().(ed25519.PublicKey),
		MasterKey: format.SealMasterKey(u.mk, format.PurposePassword, u.acct, kdf, nk.Wrap),
	}, kdf
}

func TestPasswordChange(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	other, st, _ := u.login("phone")
	if st != 200 {
		t.Fatal("login")
	}
	oldKeys := format.DerivePasswordKeys(u.password, u.kdf)

	// A proof made with the wrong key, or with the login purpose, is refused.
	wrong := format.DerivePasswordKeys([]byte("wrong"), u.kdf)
	req, _ := u.passwordRequest(wrong.Login, format.ProofPassword, []byte("new"))
	st, ae := e.call("PUT", "/v1/account/password", u.token, req, nil)
	wantErr(t, st, ae, 401, api.CodeLoginFailed)
	req, _ = u.passwordRequest(oldKeys.Login, format.ProofLogin, []byte("new"))
	st, ae = e.call("PUT", "/v1/account/password", u.token, req, nil)
	wantErr(t, st, ae, 401, api.CodeLoginFailed)

	req, _ = u.passwordRequest(oldKeys.Login, format.ProofPassword, []byte("new"))
	if st, ae := e.call("PUT", "/v1/account/password", u.token, req, nil); st != 204 {
		t.Fatalf("password change: %d %+v", st, ae)
	}
	// Other sessions are revoked, this one lives.
	st, ae = e.call("GET", "/v1/account", other.Token, nil, nil)
	wantErr(t, st, ae, 401, api.CodeUnauthorized)
	if st, _ := e.call("GET", "/v1/account", u.token, nil, nil); st != 200 {
		t.Fatal("current session revoked")
	}
	// Old password fails, new one works.
	_, st, ae = u.login("")
	wantErr(t, st, ae, 401, api.CodeLoginFailed)
	u.password = []byte("new")
	resp, st, ae := u.login("")
	if st != 200 {
		t.Fatalf("login with new password: %d %+v", st, ae)
	}
	kdf, err := format.EnvelopeKDF(resp.MasterKey)
	if err != nil {
		t.Fatal(err)
	}
	if mk, err := format.OpenMasterKey(resp.MasterKey, format.PurposePassword, u.acct, format.DerivePasswordKeys(u.password, kdf).Wrap); err != nil || mk != u.mk {
		t.Fatalf("new envelope: %v", err)
	}

	// Recovery: log in with the recovery key, then set a password with a recovery proof.
	rk := format.DeriveRecoveryKeys(u.mk.RecoveryKey())
	var pre api.PreloginResponse
	e.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: "alice", Recovery: true}, &pre)
	var rl api.LoginResponse
	st, ae = e.call("POST", "/v1/login/finish", "", api.LoginRequest{Username: "alice", Challenge: pre.Challenge, Recovery: true,
		Signature: ed25519.Sign(rk.Login, format.LoginMessage(u.acct, "alice", [32]byte(pre.Challenge), format.ProofRecover))}, &rl)
	if st != 200 {
		t.Fatalf("recovery login: %d %+v", st, ae)
	}
	if mk, err := format.OpenMasterKey(rl.MasterKey, format.PurposeRecovery, u.acct, rk.Wrap); err != nil || mk != u.mk {
		t.Fatalf("recovery envelope: %v", err)
	}
	req, _ = u.passwordRequest(rk.Login, format.ProofRecover, []byte("third"))
	req.KeepSessions = true
	if st, ae := e.call("PUT", "/v1/account/password", rl.Token, req, nil); st != 204 {
		t.Fatalf("recovery password change: %d %+v", st, ae)
	}
	if st, _ := e.call("GET", "/v1/account", u.token, nil, nil); st != 200 {
		t.Fatal("keep_sessions revoked a session")
	}
	u.password = []byte("third")
	if _, st, ae := u.login(""); st != 200 {
		t.Fatalf("login after recovery: %d %+v", st, ae)
	}
}

func TestMalformedRequests(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	raw := func(method, path, body string) (int, api.Error) {
		resp := e.request(method, path, u.token, []byte(body))
		defer resp.Body.Close()
		var ae api.Error
		if err := json.NewDecoder(resp.Body).Decode(&ae); err != nil {
			t.Fatalf("%s %s: non-JSON error body", method, path)
		}
		return resp.StatusCode, ae
	}
	st, ae := raw("POST", "/v1/login/start", `{"username":`)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	st, ae = raw("POST", "/v1/login/start", `{"username":"a","bogus":1}`)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	mustContain(t, ae.Message, "bogus")
	st, ae = raw("POST", "/v1/login/start", `{"username":5}`)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	mustContain(t, ae.Message, "username")
	st, ae = raw("POST", "/v1/login/start", `{"username":"a"} {}`)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	st, ae = raw("POST", "/v1/blobs/check", `{"blobs":["xyz"]}`)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	mustContain(t, ae.Message, "blob id")
	st, ae = raw("POST", "/v1/login/start", `{"username":"`+strings.Repeat("a", 2<<20)+`"}`)
	wantErr(t, st, ae, 413, api.CodeTooLarge)
	st, ae = raw("GET", "/v1/trees/nothex/head", "")
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	mustContain(t, ae.Message, "tree id")
	st, ae = raw("DELETE", "/v1/account", "")
	if st != http.StatusMethodNotAllowed || ae.Code != api.CodeBadRequest {
		t.Fatalf("wrong method: %d %+v", st, ae)
	}
	st, ae = raw("GET", "/v1/nothing", "")
	wantErr(t, st, ae, 404, api.CodeNotFound)

	// healthz is plain.
	resp := e.request("GET", "/healthz", "", nil)
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || b.String() != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, b.String())
	}
}

func TestUserKeysAndUsage(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DefaultQuota = 1 << 20 })
	a := e.signup("alice")
	b := e.signup("bob")
	var keys api.UserKeysResponse
	if st, ae := e.call("GET", "/v1/users/bob/keys", a.token, nil, &keys); st != 200 {
		t.Fatalf("keys: %d %+v", st, ae)
	}
	pk, err := format.ParsePublicKeys(keys.PublicKeys)
	if err != nil || keys.Account != b.acct || pk.Username != "bob" {
		t.Fatalf("keys: %+v %v", keys, err)
	}
	st, ae := e.call("GET", "/v1/users/nobody/keys", a.token, nil, nil)
	wantErr(t, st, ae, 404, api.CodeNotFound)
	var usage api.UsageResponse
	if st, _ := e.call("GET", "/v1/usage", a.token, nil, &usage); st != 200 || usage.Quota != 1<<20 || usage.Used != 0 {
		t.Fatalf("usage: %+v", usage)
	}
	if _, st, _ := a.upload([]byte("0123456789")); st != 200 {
		t.Fatal("upload")
	}
	if st, _ := e.call("GET", "/v1/usage", a.token, nil, &usage); st != 200 || usage.Used != 10 || usage.Blobs != 1 {
		t.Fatalf("usage after upload: %+v", usage)
	}
}
