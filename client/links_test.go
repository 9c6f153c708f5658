package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/server"
	"coffer/internal/testenv"
)

// linkFixture: alice with /docs/a.txt (multi-chunk-free small file), /docs/sub/b.bin and
// /other/secret.txt, uploaded through the library.
type linkFixture struct {
	env   *testenv.Env
	alice *client.Client
	a, b  []byte
}

func newLinkFixture(t *testing.T, opts ...testenv.Option) *linkFixture {
	t.Helper()
	ctx := context.Background()
	f := &linkFixture{env: testenv.New(t, opts...)}
	f.alice = f.env.Client(t, "alice")
	src := t.TempDir()
	f.a = []byte("hello from alice\n")
	f.b = make([]byte, 3<<20+123)
	rand.Read(f.b)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "docs", "sub"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "other"), 0o755))
	must(os.WriteFile(filepath.Join(src, "docs", "a.txt"), f.a, 0o644))
	must(os.WriteFile(filepath.Join(src, "docs", "sub", "b.bin"), f.b, 0o644))
	must(os.WriteFile(filepath.Join(src, "other", "secret.txt"), []byte("not shared"), 0o644))
	_, err := f.alice.Upload(ctx, []string{filepath.Join(src, "docs"), filepath.Join(src, "other")}, "/", client.TransferOptions{})
	must(err)
	return f
}

// visitorConfig is a client configuration with no state directory and cheap KDF minimums.
func visitorConfig(env *testenv.Env) client.Config {
	cfg := env.Config("")
	cfg.Server = ""
	return cfg
}

func TestLinkFolderAndFile(t *testing.T) {
	ctx := context.Background()
	f := newLinkFixture(t)
	folder, err := f.alice.CreateLink(ctx, "/docs", client.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(folder.URL, f.env.ProxyURL+"/s/") || !strings.Contains(folder.URL, "#") {
		t.Fatalf("URL %q", folder.URL)
	}
	file, err := f.alice.CreateLink(ctx, "/docs/a.txt", client.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}

	l, err := client.OpenLink(ctx, visitorConfig(f.env), folder.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !l.IsDir() || l.Name() != "docs" || l.Owner() != "alice" {
		t.Fatalf("link: dir %v name %q owner %q", l.IsDir(), l.Name(), l.Owner())
	}
	es, err := l.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(es); len(got) != 2 || got[0] != "a.txt" || got[1] != "sub" {
		t.Fatalf("ls / = %v", got)
	}
	var buf bytes.Buffer
	if err := l.Cat(ctx, "/sub/b.bin", &buf); err != nil || !bytes.Equal(buf.Bytes(), f.b) {
		t.Fatalf("cat /sub/b.bin: %v (%d bytes)", err, buf.Len())
	}
	dst := t.TempDir()
	if _, err := l.Download(ctx, "/", dst, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "docs", "sub", "b.bin")); !bytes.Equal(got, f.b) {
		t.Fatal("downloaded folder: b.bin differs")
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "docs", "a.txt")); !bytes.Equal(got, f.a) {
		t.Fatal("downloaded folder: a.txt differs")
	}

	fl, err := client.OpenLink(ctx, visitorConfig(f.env), file.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := fl.Cat(ctx, "/", &buf); err != nil || !bytes.Equal(buf.Bytes(), f.a) {
		t.Fatalf("cat file link: %v %q", err, buf.Bytes())
	}
	out := filepath.Join(t.TempDir(), "copy.txt")
	if _, err := fl.Download(ctx, "/", out, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, f.a) {
		t.Fatal("downloaded file differs")
	}
	into := t.TempDir() // an existing folder: the file goes inside it under its own name
	if _, err := fl.Download(ctx, "/", into, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(into, "a.txt")); !bytes.Equal(got, f.a) {
		t.Fatal("file downloaded into a folder differs")
	}

	// The owner lists and revokes; the old URL then fails clearly.
	ls, err := f.alice.Links(ctx)
	if err != nil || len(ls) != 2 || ls[0].Downloads != 1 || ls[1].Downloads != 1 || ls[0].URL != "" {
		t.Fatalf("Links = %d, %v", len(ls), err)
	}
	if err := f.alice.RevokeLink(ctx, folder.URL); err != nil {
		t.Fatal(err)
	}
	_, err = client.OpenLink(ctx, visitorConfig(f.env), folder.URL, client.LinkOpenOptions{})
	if !errors.Is(err, client.ErrLinkGone) || !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("open revoked link: %v", err)
	}
	// An already opened link stops working too.
	if _, err := l.List(ctx, "/sub"); !errors.Is(err, client.ErrLinkGone) {
		t.Fatalf("list through a revoked link: %v", err)
	}
}

func TestLinkSubtreeOnly(t *testing.T) {
	ctx := context.Background()
	f := newLinkFixture(t)
	li, err := f.alice.CreateLink(ctx, "/docs/sub", client.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := client.OpenLink(ctx, visitorConfig(f.env), li.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.List(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	// Raw requests with the link's token for folders and blobs outside the subtree: refused.
	var token, tree, linkHex string
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/open") {
			b, _ := testenv.ReadBody(resp)
			var or api.LinkOpenResponse
			if jsonUnmarshal(b, &or) == nil {
				token = or.Token
			}
			linkHex = strings.Split(req.URL.Path, "/")[3]
		}
		return nil
	})
	if _, err := client.OpenLink(ctx, visitorConfig(f.env), li.URL, client.LinkOpenOptions{}); err != nil {
		t.Fatal(err)
	}
	f.env.SetHook(nil)
	tree = f.alice.Whoami().Account.String() // not a tree: must be refused as well
	get := func(path string) int {
		req, _ := http.NewRequest("GET", f.env.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	docs, err := f.alice.Stat(ctx, "/docs")
	if err != nil {
		t.Fatal(err)
	}
	realTree := treeOf(t, f)
	for _, p := range []string{
		"/v1/links/" + linkHex + "/trees/" + realTree + "/folders/" + docs.ID.String(),
		"/v1/links/" + linkHex + "/trees/" + realTree + "/folders/00000000000000000000000000000000",
		"/v1/links/" + linkHex + "/trees/" + tree + "/folders/" + docs.ID.String(),
	} {
		if code := get(p); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
	sub, _ := f.alice.Stat(ctx, "/docs/sub")
	if code := get("/v1/links/" + linkHex + "/trees/" + realTree + "/folders/" + sub.ID.String()); code != http.StatusOK {
		t.Errorf("listing of the linked folder = %d", code)
	}
	// Without the token: 401.
	token = "x"
	if code := get("/v1/links/" + linkHex + "/trees/" + realTree + "/folders/" + sub.ID.String()); code != http.StatusUnauthorized {
		t.Errorf("listing without token = %d", code)
	}
}

func TestLinkPasswordAndThrottle(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newLinkFixture(t, func(c *server.Config) { c.Now = clock })
	li, err := f.alice.CreateLink(ctx, "/docs/a.txt", client.LinkOptions{Password: []byte("open sesame")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := visitorConfig(f.env)
	if _, err := client.OpenLink(ctx, cfg, li.URL, client.LinkOpenOptions{}); !errors.Is(err, client.ErrLinkNeedsPassword) {
		t.Fatalf("no password: %v", err)
	}
	pw := func(s string) client.LinkOpenOptions {
		return client.LinkOpenOptions{Password: func() ([]byte, error) { return []byte(s), nil }}
	}
	for i := 0; i < 5; i++ {
		if _, err := client.OpenLink(ctx, cfg, li.URL, pw("wrong")); !errors.Is(err, client.ErrLinkPassword) {
			t.Fatalf("wrong password #%d: %v", i+1, err)
		}
	}
	// Throttled now, even with the right password.
	if _, err := client.OpenLink(ctx, cfg, li.URL, pw("open sesame")); !errors.Is(err, client.ErrRateLimited) {
		t.Fatalf("after 5 failures: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	l, err := client.OpenLink(ctx, cfg, li.URL, pw("open sesame"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.Cat(ctx, "/", &buf); err != nil || !bytes.Equal(buf.Bytes(), f.a) {
		t.Fatalf("cat: %v", err)
	}
	// The secret without the password, or the password with another secret: refused.
	other := li.URL[:len(li.URL)-3] + "AAA"
	if _, err := client.OpenLink(ctx, cfg, other, pw("open sesame")); err == nil {
		t.Fatal("damaged secret accepted")
	}
}

func TestLinkExpiryAndMaxDownloads(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newLinkFixture(t, func(c *server.Config) { c.Now = clock })
	cfg := visitorConfig(f.env)
	exp, err := f.alice.CreateLink(ctx, "/docs", client.LinkOptions{Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	limited, err := f.alice.CreateLink(ctx, "/docs/a.txt", client.LinkOptions{MaxDownloads: 2})
	if err != nil {
		t.Fatal(err)
	}
	l, err := client.OpenLink(ctx, cfg, exp.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := client.OpenLink(ctx, cfg, limited.URL, client.LinkOpenOptions{}); err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
	}
	if _, err := client.OpenLink(ctx, cfg, limited.URL, client.LinkOpenOptions{}); !errors.Is(err, client.ErrLinkGone) {
		t.Fatalf("third open of a 2-download link: %v", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if _, err := client.OpenLink(ctx, cfg, exp.URL, client.LinkOpenOptions{}); !errors.Is(err, client.ErrLinkGone) ||
		!strings.Contains(err.Error(), "link revoked or expired") {
		t.Fatalf("expired link: %v", err)
	}
	if _, err := l.List(ctx, "/"); !errors.Is(err, client.ErrLinkGone) {
		t.Fatalf("listing through an expired link: %v", err)
	}
}

// TestScenario31_LinkHandleSwap: a server answering an open with another node's record, another
// link's record, or a record re-signed by its own key is refused.
func TestScenario31_LinkHandleSwap(t *testing.T) {
	ctx := context.Background()
	f := newLinkFixture(t)
	target, err := f.alice.CreateLink(ctx, "/docs", client.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	decoy, err := f.alice.CreateLink(ctx, "/other", client.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := visitorConfig(f.env)
	// Capture the decoy's open answer.
	var decoyResp api.LinkOpenResponse
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/open") {
			b, _ := testenv.ReadBody(resp)
			return jsonUnmarshal(b, &decoyResp)
		}
		return nil
	})
	if _, err := client.OpenLink(ctx, cfg, decoy.URL, client.LinkOpenOptions{}); err != nil {
		t.Fatal(err)
	}
	swap := func(edit func(r *api.LinkOpenResponse)) error {
		f.env.SetHook(func(req *http.Request, resp *http.Response) error {
			if !strings.HasSuffix(req.URL.Path, "/open") || resp.StatusCode != 200 {
				return nil
			}
			b, _ := testenv.ReadBody(resp)
			var r api.LinkOpenResponse
			if err := jsonUnmarshal(b, &r); err != nil {
				return err
			}
			edit(&r)
			testenv.ReplaceBody(resp, jsonMarshal(r))
			return nil
		})
		defer f.env.SetHook(nil)
		_, err := client.OpenLink(ctx, cfg, target.URL, client.LinkOpenOptions{})
		return err
	}
	cases := map[string]func(r *api.LinkOpenResponse){
		"another node's record":   func(r *api.LinkOpenResponse) { r.Node = decoyResp.Node },
		"another link's record":   func(r *api.LinkOpenResponse) { r.Record = decoyResp.Record },
		"both swapped":            func(r *api.LinkOpenResponse) { r.Record, r.Node = decoyResp.Record, decoyResp.Node },
		"flipped wrapped key":     func(r *api.LinkOpenResponse) { r.Record[100] ^= 1 },
		"other owner keys":        func(r *api.LinkOpenResponse) { r.OwnerPublicKeys = otherKeys(t, f) },
		"owner name not the keys": func(r *api.LinkOpenResponse) { r.Owner = "mallory" },
	}
	for name, edit := range cases {
		if err := swap(edit); !errors.Is(err, coffer.ErrAuth) && !errors.Is(err, coffer.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrAuth", name, err)
		}
	}
	// A listing of another folder served for the linked one: refused.
	l, err := client.OpenLink(ctx, cfg, target.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := f.alice.Stat(ctx, "/other")
	docs, _ := f.alice.Stat(ctx, "/docs")
	otherListing := ownerListing(t, f, other.ID.String())
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/folders/"+docs.ID.String()) {
			testenv.ReplaceBody(resp, otherListing)
		}
		return nil
	})
	if _, err := l.List(ctx, "/"); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("listing of another folder accepted: %v", err)
	}
	f.env.SetHook(nil)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// treeOf returns alice's tree ID from the server's store.
func treeOf(t *testing.T, f *linkFixture) string {
	t.Helper()
	a, err := f.env.Meta.AccountByName(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	return a.Tree.String()
}

// otherKeys signs up bob and returns his public key record.
func otherKeys(t *testing.T, f *linkFixture) []byte {
	t.Helper()
	if _, err := f.env.Meta.AccountByName(context.Background(), "bob"); err != nil {
		f.env.Client(t, "bob")
	}
	a, err := f.env.Meta.AccountByName(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	return a.PublicKeys
}

// ownerListing returns the raw listing alice's client receives for folder id (captured at the
// proxy from a fresh login listing that folder).
func ownerListing(t *testing.T, f *linkFixture, id string) []byte {
	t.Helper()
	ctx := context.Background()
	var got []byte
	var mu sync.Mutex
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/folders/"+id) && !strings.Contains(req.URL.Path, "/links/") {
			b, err := testenv.ReadBody(resp)
			mu.Lock()
			got = b
			mu.Unlock()
			return err
		}
		return nil
	})
	c, err := client.Login(ctx, f.env.Config(t.TempDir()), "alice", testenv.Password("alice"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(ctx, "/other"); err != nil {
		t.Fatal(err)
	}
	f.env.SetHook(nil)
	mu.Lock()
	defer mu.Unlock()
	if got == nil {
		t.Fatal("listing not captured")
	}
	return got
}

// recorder is an http.RoundTripper that keeps every request's URL, headers and body.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	var sb strings.Builder
	sb.WriteString(req.Method + " " + req.URL.String() + "\n")
	for k, vs := range req.Header {
		sb.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	sb.Write(b)
	r.mu.Lock()
	r.seen = append(r.seen, sb.String())
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.seen, "\n")
}

// TestScenario30_LinkSecretNeverSent: creating and using links (plain and password) never sends
// the fragment secret, the password or anything derived from them but the LinkAuth public key
// and signatures: checked in every request the owner and the visitor send (a recording
// transport), every request the server's proxy sees, and the server's debug log.
func TestScenario30_LinkSecretNeverSent(t *testing.T) {
	ctx := context.Background()
	var logBuf safeBuf
	f := newLinkFixture(t, func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var proxySeen safeBuf
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		proxySeen.Write([]byte(req.Method + " " + req.URL.String() + "\n"))
		for k, vs := range req.Header {
			proxySeen.Write([]byte(k + ": " + strings.Join(vs, ",") + "\n"))
		}
		return nil
	})
	rec := &recorder{}
	ownerCfg := f.env.Config(t.TempDir())
	ownerCfg.HTTPClient = &http.Client{Transport: rec}
	owner, err := client.Login(ctx, ownerCfg, "alice", testenv.Password("alice"), "test")
	if err != nil {
		t.Fatal(err)
	}
	password := []byte("hunter2 link password")
	plain, err := owner.CreateLink(ctx, "/docs", client.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := owner.CreateLink(ctx, "/docs/a.txt", client.LinkOptions{Password: password, MaxDownloads: 5})
	if err != nil {
		t.Fatal(err)
	}
	vcfg := visitorConfig(f.env)
	vcfg.HTTPClient = &http.Client{Transport: rec}
	l, err := client.OpenLink(ctx, vcfg, plain.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Download(ctx, "/", t.TempDir(), client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	wrong := client.LinkOpenOptions{Password: func() ([]byte, error) { return []byte("wrong"), nil }}
	if _, err := client.OpenLink(ctx, vcfg, pw.URL, wrong); !errors.Is(err, client.ErrLinkPassword) {
		t.Fatal(err)
	}
	right := client.LinkOpenOptions{Password: func() ([]byte, error) { return password, nil }}
	pl, err := client.OpenLink(ctx, vcfg, pw.URL, right)
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Cat(ctx, "/", io.Discard); err != nil {
		t.Fatal(err)
	}

	haystacks := map[string]string{"requests": rec.all(), "proxy": proxySeen.String(), "server log": logBuf.String()}
	if !strings.Contains(haystacks["requests"], "/v1/links/") || !strings.Contains(haystacks["proxy"], "/open") ||
		!strings.Contains(haystacks["server log"], "request") {
		t.Fatal("the recorders saw nothing: the test would pass vacuously")
	}
	for _, u := range []string{plain.URL, pw.URL} {
		_, _, secret, err := format.ParseLinkURL(u)
		if err != nil {
			t.Fatal(err)
		}
		var kdf format.KDFParams
		var pwd []byte
		if u == pw.URL {
			fl := linkRecordOf(t, f, u)
			kdf, pwd = fl.KDF, password
		}
		keys := format.DeriveLinkKeys(secret, pwd, kdf)
		needles := map[string][]byte{"secret": secret[:], "secret key": keys.Secret[:], "auth seed": keys.Auth.Seed(), "password": password}
		for what, raw := range needles {
			for _, enc := range encodings(raw) {
				for where, h := range haystacks {
					if strings.Contains(h, enc) {
						t.Errorf("%s of %s found in %s", what, u[:strings.IndexByte(u, '#')], where)
					}
				}
			}
		}
	}
}

// encodings returns the raw string and its hex (both cases) and base64 (4 alphabets) forms.
func encodings(b []byte) []string {
	return []string{string(b), hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
}

// linkRecordOf returns the stored link record of a URL.
func linkRecordOf(t *testing.T, f *linkFixture, u string) *format.Link {
	t.Helper()
	_, id, _, err := format.ParseLinkURL(u)
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.env.Meta.Link(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := format.ParseLink(l.Record)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

type safeBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLinkFolder10k measures opening a folder link with 10,000 entries and listing it (every
// entry verified against the head and decrypted): the target is <= 2 s.
func TestLinkFolder10k(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow (uploads 10,000 files) and a timing target: not in -short or -race runs")
	}
	ctx := context.Background()
	env := testenv.New(t)
	alice := env.Client(t, "alice")
	src := filepath.Join(t.TempDir(), "many")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 10_000
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%05d.txt", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if _, err := alice.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("upload of %d files: %v", n, time.Since(start))
	li, err := alice.CreateLink(ctx, "/many", client.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	l, err := client.OpenLink(ctx, visitorConfig(env), li.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es, err := l.List(ctx, "/")
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != n || es[0].Name != "f00000.txt" {
		t.Fatalf("listed %d entries", len(es))
	}
	t.Logf("open + verified listing of a %d-entry folder link: %v", n, elapsed)
	if elapsed > 2*time.Second {
		t.Errorf("open + list took %v, want <= 2 s", elapsed)
	}
}

// TestLinkRollbackRemembered: a visitor with a state directory refuses a listing at a head older
// than one it verified on an earlier visit.
func TestLinkRollbackRemembered(t *testing.T) {
	ctx := context.Background()
	f := newLinkFixture(t)
	li, err := f.alice.CreateLink(ctx, "/docs", client.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	docs, err := f.alice.Stat(ctx, "/docs")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var old []byte
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.Contains(req.URL.Path, "/links/") && strings.HasSuffix(req.URL.Path, "/folders/"+docs.ID.String()) {
			b, err := testenv.ReadBody(resp)
			mu.Lock()
			if old == nil {
				old = b
			}
			mu.Unlock()
			return err
		}
		return nil
	})
	cfg := visitorConfig(f.env)
	cfg.StateDir = t.TempDir()
	visit := func() error {
		l, err := client.OpenLink(ctx, cfg, li.URL, client.LinkOpenOptions{})
		if err != nil {
			return err
		}
		_, err = l.List(ctx, "/")
		return err
	}
	if err := visit(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.Mkdir(ctx, "/docs/new", false); err != nil {
		t.Fatal(err)
	}
	if err := visit(); err != nil { // sees (and remembers) the newer head
		t.Fatal(err)
	}
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.Contains(req.URL.Path, "/links/") && strings.HasSuffix(req.URL.Path, "/folders/"+docs.ID.String()) {
			mu.Lock()
			defer mu.Unlock()
			testenv.ReplaceBody(resp, old)
		}
		return nil
	})
	if err := visit(); !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("replayed old listing: %v, want ErrRollback", err)
	}
	// Without a state directory the replay cannot be detected (documented), but it is still an
	// authentic old state.
	cfg.StateDir = ""
	if err := visit(); err != nil {
		t.Fatalf("stateless visitor: %v", err)
	}
}
