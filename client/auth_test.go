package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

func TestPasswordChangeRecoverySessions(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	state := t.TempDir()
	c := env.ClientWith(t, env.Config(state), "carol")
	src := filepath.Join(t.TempDir(), "f")
	writeFile(t, src, []byte("secret"))
	if _, err := c.Upload(ctx, []string{src}, "/f", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	rk := c.RecoveryKey()
	if id := c.Whoami(); id.Username != "carol" || id.Fingerprint == "" {
		t.Fatalf("whoami %+v", id)
	}

	// Wrong password.
	if _, err := client.Login(ctx, env.Config(""), "carol", []byte("nope"), "x"); !errors.Is(err, client.ErrLoginFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	// A second session, then a password change revokes it.
	other, err := client.Login(ctx, env.Config(""), "carol", testenv.Password("carol"), "laptop")
	if err != nil {
		t.Fatal(err)
	}
	ss, err := c.Sessions(ctx)
	if err != nil || len(ss) != 2 {
		t.Fatalf("sessions: %+v %v", ss, err)
	}
	if err := c.ChangePassword(ctx, []byte("wrong old"), []byte("new pass")); !errors.Is(err, client.ErrLoginFailed) {
		t.Fatalf("passwd with a wrong old password: %v", err)
	}
	if err := c.ChangePassword(ctx, testenv.Password("carol"), []byte("new pass")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.List(ctx, "/"); !errors.Is(err, client.ErrSession) {
		t.Fatalf("other session after passwd: %v", err)
	}
	if _, err := client.Login(ctx, env.Config(""), "carol", testenv.Password("carol"), "x"); !errors.Is(err, client.ErrLoginFailed) {
		t.Fatalf("old password: %v", err)
	}
	c2, err := client.Login(ctx, env.Config(""), "carol", []byte("new pass"), "x")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c2.Cat(ctx, "/f", &buf); err != nil || buf.String() != "secret" {
		t.Fatalf("file after passwd: %q %v", buf.String(), err)
	}

	// Recovery: log in with the recovery key, set a third password.
	c3, err := client.LoginRecovery(ctx, env.Config(""), "carol", rk, []byte("third"), "phone")
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := c3.Cat(ctx, "/f", &buf); err != nil || buf.String() != "secret" {
		t.Fatalf("file after recovery: %q %v", buf.String(), err)
	}
	if _, err := client.Login(ctx, env.Config(""), "carol", []byte("third"), "x"); err != nil {
		t.Fatalf("login with the recovered password: %v", err)
	}
	var badRK format.RecoveryKey
	if _, err := client.LoginRecovery(ctx, env.Config(""), "carol", badRK, []byte("x"), "x"); !errors.Is(err, client.ErrLoginFailed) {
		t.Fatalf("wrong recovery key: %v", err)
	}

	// Resume from the state dir, logout keeps the verified state.
	if _, err := client.Resume(ctx, env.Config(state)); !errors.Is(err, client.ErrSession) {
		t.Fatalf("resume of a session revoked by the recovery: %v", err)
	}
	if _, err := client.Login(ctx, env.Config(state), "carol", []byte("third"), "again"); err != nil {
		t.Fatal(err)
	}
	r, err := client.Resume(ctx, env.Config(state))
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if err := r.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Resume(ctx, env.Config(state)); !errors.Is(err, client.ErrNotLoggedIn) {
		t.Fatalf("resume after logout: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "accounts")); err != nil {
		t.Fatalf("verified state removed by logout: %v", err)
	}
	ss, err = c3.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if !s.Current {
			if err := c3.RevokeSession(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := c2.List(ctx, "/"); !errors.Is(err, client.ErrSession) {
		t.Fatalf("revoked session: %v", err)
	}
	if _, err := c3.Usage(ctx); err != nil {
		t.Fatal(err)
	}
}

// rewriteJSON returns a hook rewriting the JSON body of responses to path.
func rewriteJSON[T any](path string, edit func(*T)) testenv.Hook {
	return func(req *http.Request, resp *http.Response) error {
		if req.URL.Path != path || resp.StatusCode != 200 {
			return nil
		}
		b, err := testenv.ReadBody(resp)
		if err != nil {
			return err
		}
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		edit(&v)
		nb, _ := json.Marshal(&v)
		testenv.ReplaceBody(resp, nb)
		return nil
	}
}

func TestKDFDowngradeRefusedBeforeArgon2(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	env.Client(t, "dave")
	// The server offers 1 pass over 4 GiB: Argon2id would take seconds and 4 GiB.
	env.SetHook(rewriteJSON("/v1/login/start", func(p *api.PreloginResponse) {
		p.KDF.Time, p.KDF.MemoryKiB = 1, 4<<20
	}))
	cfg := env.Config("")
	cfg.MinKDF = format.MinKDF()
	start := time.Now()
	_, err := client.Login(ctx, cfg, "dave", testenv.Password("dave"), "x")
	if !errors.Is(err, coffer.ErrInvalid) || !strings.Contains(err.Error(), "time 1 below minimum 3") {
		t.Fatalf("downgraded KDF: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second { // Argon2id over 4 GiB takes far longer
		t.Fatalf("refusal took %v: Argon2id ran", d)
	}
}

func TestTamperedLoginMaterial(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	env.Client(t, "erin")
	mallory := env.Client(t, "mallory")
	_ = mallory
	var malloryKeys []byte
	env.SetHook(rewriteJSON("/v1/login/finish", func(r *api.LoginResponse) { malloryKeys = r.Account.PublicKeys }))
	if _, err := client.Login(ctx, env.Config(""), "mallory", testenv.Password("mallory"), "x"); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*api.LoginResponse){
		"envelope":    func(r *api.LoginResponse) { r.MasterKey[len(r.MasterKey)-1] ^= 1 },
		"bundle":      func(r *api.LoginResponse) { r.Account.Bundle[len(r.Account.Bundle)-3] ^= 1 },
		"public keys": func(r *api.LoginResponse) { r.Account.PublicKeys = malloryKeys },
		"tree":        func(r *api.LoginResponse) { r.Account.Tree[0] ^= 1 },
	}
	for name, edit := range cases {
		env.SetHook(rewriteJSON("/v1/login/finish", edit))
		_, err := client.Login(ctx, env.Config(""), "erin", testenv.Password("erin"), "x")
		if !errors.Is(err, coffer.ErrAuth) {
			t.Errorf("%s flipped: %v", name, err)
		}
	}
}

func TestBundleGenerationRollback(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	state := t.TempDir()
	c := env.ClientWith(t, env.Config(state), "olga")
	p := filepath.Join(state, "accounts", c.Whoami().Account.String(), "state.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	st["bundle_generation"] = 7 // this device saw generation 7; the server serves 1
	b, _ = json.Marshal(st)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Login(ctx, env.Config(state), "olga", testenv.Password("olga"), "x"); !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("old bundle generation: %v", err)
	}
	// Resume refuses to send the token to another server.
	cfg := env.Config(state)
	cfg.Server = env.URL
	if _, err := client.Resume(ctx, cfg); !errors.Is(err, client.ErrNotLoggedIn) {
		t.Fatalf("resume against another server: %v", err)
	}
}

func TestForeignTreeListingRefused(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	victim := env.Client(t, "pat")
	env.Client(t, "quinn")
	var foreign []byte
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.Method == "GET" && strings.Contains(req.URL.Path, "/folders/00000000000000000000000000000000") {
			foreign, _ = testenv.ReadBody(resp)
		}
		return nil
	})
	q, err := client.Login(ctx, env.Config(""), "quinn", testenv.Password("quinn"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.List(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.Method == "GET" && strings.Contains(req.URL.Path, "/folders/") {
			testenv.ReplaceBody(resp, foreign)
		}
		return nil
	})
	if _, err := victim.List(ctx, "/"); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("listing of another account's tree: %v", err)
	}
}
