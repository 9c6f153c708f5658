package hostile

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// frame is one frame of a folder listing.
type frame struct {
	typ byte
	b   []byte
}

// splitFrames splits a listing body; ok is false if it is not well framed.
func splitFrames(b []byte) (fs []frame, ok bool) {
	for len(b) > 0 {
		if len(b) < 5 {
			return fs, false
		}
		n := binary.BigEndian.Uint32(b[1:5])
		if uint64(len(b)-5) < uint64(n) {
			return fs, false
		}
		fs = append(fs, frame{b[0], bytes.Clone(b[5 : 5+n])})
		b = b[5+n:]
	}
	return fs, true
}

func joinFrames(fs []frame) []byte {
	var out []byte
	for _, f := range fs {
		out = append(out, f.typ)
		out = binary.BigEndian.AppendUint32(out, uint32(len(f.b)))
		out = append(out, f.b...)
	}
	return out
}

func isListing(req *http.Request, resp *http.Response) bool {
	return req.Method == "GET" && strings.Contains(req.URL.Path, "/folders/") && resp.StatusCode == 200
}

func isBlobGet(req *http.Request, resp *http.Response) bool {
	return req.Method == "GET" && strings.HasPrefix(req.URL.Path, "/v1/blobs/") && resp.StatusCode/100 == 2
}

func isPath(req *http.Request, method, p string) bool {
	return req.Method == method && req.URL.Path == p
}

// folderOf returns the node ID a listing request asks for.
func folderOf(req *http.Request) string {
	i := strings.LastIndex(req.URL.Path, "/folders/")
	if i < 0 {
		return ""
	}
	return req.URL.Path[i+len("/folders/"):]
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixture is an account with /d/a (3 chunks), /d/b (3 chunks), /d/s (small) and /e/x, uploaded
// by one client; c is a second, fresh login (no cached listings) sharing the state directory.
type fixture struct {
	env      *testenv.Env
	user     string
	state    string
	c        *client.Client
	contents map[string][]byte // remote path -> plaintext
}

const chunk = format.DefaultChunkSize

func newFixture(t testing.TB, user string) *fixture {
	t.Helper()
	ctx := context.Background()
	env := testenv.New(t)
	f := &fixture{env: env, user: user, state: t.TempDir(), contents: map[string][]byte{}}
	up := env.ClientWith(t, env.Config(f.state), user)
	src := filepath.Join(t.TempDir(), "src")
	files := map[string][]byte{
		"d/a": randBytes(2*chunk + 5),
		"d/b": randBytes(2*chunk + 7),
		"d/s": []byte("small file"),
		"e/x": randBytes(1000),
	}
	for rel, b := range files {
		writeFile(t, filepath.Join(src, rel), b)
		f.contents["/"+rel] = b
	}
	if _, err := up.Upload(ctx, []string{filepath.Join(src, "d"), filepath.Join(src, "e")}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	f.c = f.login(t, f.state)
	return f
}

// login logs the fixture's user in again with state directory state.
func (f *fixture) login(t testing.TB, state string) *client.Client {
	t.Helper()
	c, err := client.Login(context.Background(), f.env.Config(state), f.user, testenv.Password(f.user), "x")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// isClass reports whether err is one of the refusal classes the client may use against a hostile
// server.
func isRefusal(err error) bool {
	return errors.Is(err, coffer.ErrAuth) || errors.Is(err, coffer.ErrRollback) || errors.Is(err, coffer.ErrCorrupt)
}

// expectDownloadRefused downloads remote over a pre-existing local file with Overwrite and checks
// the refusal: class, the remote path named, the target untouched and no leftovers beside it.
func expectDownloadRefused(t testing.TB, c *client.Client, remote string, class error) error {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, "target")
	writeFile(t, dst, []byte("keep me"))
	_, err := c.Download(context.Background(), []string{remote}, dst, client.TransferOptions{Overwrite: true})
	if err == nil {
		t.Fatalf("download %s: accepted", remote)
	}
	if class != nil && !errors.Is(err, class) {
		t.Fatalf("download %s: %v, want %v", remote, err, class)
	}
	if class == nil && !isRefusal(err) {
		t.Fatalf("download %s: %v, want ErrAuth, ErrRollback or ErrCorrupt", remote, err)
	}
	if !namesPath(err, remote) {
		t.Errorf("download %s: error does not name the path: %v", remote, err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "keep me" {
		t.Fatalf("download %s: target overwritten with %d bytes", remote, len(b))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("download %s: leftovers beside the target: %v", remote, names)
	}
	return err
}

// expectListRefused lists p and checks the refusal class and that no entries came back.
func expectListRefused(t testing.TB, c *client.Client, p string, class error) error {
	t.Helper()
	es, err := c.List(context.Background(), p)
	if err == nil {
		t.Fatalf("list %s: accepted %d entries", p, len(es))
	}
	if es != nil {
		t.Fatalf("list %s: partial listing of %d entries returned with %v", p, len(es), err)
	}
	if class != nil && !errors.Is(err, class) {
		t.Fatalf("list %s: %v, want %v", p, err, class)
	}
	if class == nil && !isRefusal(err) {
		t.Fatalf("list %s: %v, want a refusal class", p, err)
	}
	if !namesPath(err, p) {
		t.Errorf("list %s: error does not name the path: %v", p, err)
	}
	return err
}

// recorder is an http.RoundTripper that records every request (method, path, body) the client
// sends and can fail requests before or after they reach the server.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
	// fault, if set, is consulted for every request; see faultFunc.
	fault   faultFunc
	faultMu sync.Mutex
	// respond, if set and returning non-nil, answers a request instead of the server.
	respond func(req *http.Request, body []byte) *http.Response
}

// faultFunc decides what happens to a request: "" sends it normally, "drop" fails it without
// sending it, "lose" sends it and then fails it (the server acted, the client never hears),
// "fake200:BODY" answers 200 with BODY without sending it (a lying server).
type faultFunc func(method, path string, n int) string

type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newRecorder() *recorder {
	return &recorder{base: &http.Transport{MaxIdleConnsPerHost: 16}}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.Header.Clone(), body})
	n := len(r.reqs)
	f, respond := r.fault, r.respond
	r.mu.Unlock()
	if respond != nil {
		if resp := respond(req, body); resp != nil {
			return resp, nil
		}
	}
	what := ""
	if f != nil {
		r.faultMu.Lock() // fault functions keep state: one call at a time
		what = f(req.Method, req.URL.Path, n)
		r.faultMu.Unlock()
	}
	if what == "drop" {
		return nil, errors.New("recorder: injected network failure (not sent)")
	}
	if body, ok := strings.CutPrefix(what, "fake200:"); ok {
		return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: req}, nil
	}
	resp, err := r.base.RoundTrip(req)
	if err == nil && what == "lose" {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("recorder: injected network failure (response lost)")
	}
	return resp, err
}

func (r *recorder) setFault(f faultFunc) {
	r.mu.Lock()
	r.fault = f
	r.mu.Unlock()
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func (r *recorder) client() *http.Client { return &http.Client{Transport: r} }

// secrets is what an honest login reveals to the test (which knows the password): the keys a
// hostile server must never learn, and the tree key to decrypt records for precise attacks.
type secrets struct {
	account  coffer.AccountID
	kdf      format.KDFParams
	lk       *format.LoginKeys
	mk       format.MasterKey
	bundle   *format.Bundle
	info     api.AccountInfo
	token    string
	loginRaw []byte // the raw login/finish response body
}

// captureSecrets logs user in through the proxy, recording the prelogin and login answers, and
// opens everything with the password.
func captureSecrets(t testing.TB, env *testenv.Env, user string) *secrets {
	t.Helper()
	return captureSecretsPW(t, env, user, testenv.Password(user))
}

// captureSecretsPW is captureSecrets with an explicit password.
func captureSecretsPW(t testing.TB, env *testenv.Env, user string, password []byte) *secrets {
	t.Helper()
	var mu sync.Mutex
	var pre, fin []byte
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if resp.StatusCode != 200 {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		switch req.URL.Path {
		case "/v1/login/start":
			pre, _ = testenv.ReadBody(resp)
		case "/v1/login/finish":
			fin, _ = testenv.ReadBody(resp)
		}
		return nil
	})
	defer env.SetHook(nil)
	if _, err := client.Login(context.Background(), env.Config(t.TempDir()), user, password, "spy"); err != nil {
		t.Fatalf("capture login: %v", err)
	}
	var p api.PreloginResponse
	var l api.LoginResponse
	if err := json.Unmarshal(pre, &p); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fin, &l); err != nil {
		t.Fatal(err)
	}
	s := &secrets{account: p.Account, info: l.Account, token: l.Token, loginRaw: fin}
	s.kdf = format.KDFParams{Time: p.KDF.Time, MemoryKiB: p.KDF.MemoryKiB, Threads: p.KDF.Threads, Salt: [16]byte(p.KDF.Salt)}
	s.lk = format.DerivePasswordKeys(password, s.kdf)
	mk, err := format.OpenMasterKey(l.MasterKey, format.PurposePassword, p.Account, s.lk.Wrap)
	if err != nil {
		t.Fatal(err)
	}
	s.mk = mk
	if s.bundle, err = format.OpenBundle(l.Account.Bundle, mk, p.Account); err != nil {
		t.Fatal(err)
	}
	return s
}

// opened is a decrypted record.
type opened struct {
	raw  []byte
	rec  *format.Record
	key  format.NodeKey
	body *format.Body
}

// listRaw fetches a folder listing directly from the server (no proxy) with the spy's token.
func (s *secrets) listRaw(t testing.TB, env *testenv.Env, folder coffer.NodeID) []frame {
	t.Helper()
	req, _ := http.NewRequest("GET", env.URL+"/v1/trees/"+s.bundle.Tree.String()+"/folders/"+folder.String(), nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("list %v: %d %s", folder, resp.StatusCode, b)
	}
	fs, ok := splitFrames(b)
	if !ok {
		t.Fatal("bad listing")
	}
	return fs
}

// lookup decrypts the path's record (walking from the root folder).
func (s *secrets) lookup(t testing.TB, env *testenv.Env, p string) *opened {
	t.Helper()
	wrap := s.bundle.TreeKey.WrapKey()
	var cur *opened
	for _, fr := range s.listRaw(t, env, coffer.NodeID{}) {
		if fr.typ != api.FrameRecord {
			continue
		}
		o := openRecord(t, fr.b, wrap)
		if o.body.Role == format.RoleRoot {
			cur = o
		}
	}
	if cur == nil {
		t.Fatal("no root")
	}
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		if name == "" {
			continue
		}
		var next *opened
		for _, fr := range s.listRaw(t, env, cur.rec.Node) {
			if fr.typ != api.FrameRecord {
				continue
			}
			o := openRecord(t, fr.b, cur.key.WrapKey())
			if o.body.Name == name {
				next = o
			}
		}
		if next == nil {
			t.Fatalf("lookup %s: no %q", p, name)
		}
		cur = next
	}
	return cur
}

func openRecord(t testing.TB, raw []byte, wrap format.WrapKey) *opened {
	t.Helper()
	r, err := format.ParseRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	nk, err := r.OpenKey(wrap)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.OpenBody(nk)
	if err != nil {
		t.Fatal(err)
	}
	return &opened{raw: raw, rec: r, key: nk, body: b}
}

// readBlob reads a stored blob file.
func readBlob(t testing.TB, env *testenv.Env, id coffer.BlobID) []byte {
	t.Helper()
	b, err := os.ReadFile(env.BlobPath(id))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

// blobEdit returns a hook that serves edit(stored bytes) for blob id (all blobs if id is zero),
// honouring the Range of the request, so the client sees a consistently edited blob however it
// reads it. edit gets a copy of the whole stored blob and may change its length.
func blobEdit(env *testenv.Env, id coffer.BlobID, edit func(id coffer.BlobID, b []byte) []byte) testenv.Hook {
	return func(req *http.Request, resp *http.Response) error {
		if !isBlobGet(req, resp) {
			return nil
		}
		got, err := coffer.ParseBlobID(path.Base(req.URL.Path))
		if err != nil || (!id.IsZero() && got != id) {
			return nil
		}
		full, err := os.ReadFile(env.BlobPath(got))
		if err != nil {
			return nil
		}
		nb := edit(got, bytes.Clone(full))
		testenv.ReadBody(resp)
		rg := req.Header.Get("Range")
		if rg == "" {
			testenv.ReplaceBody(resp, nb)
			return nil
		}
		var a, b int64
		if _, err := fmt.Sscanf(rg, "bytes=%d-%d", &a, &b); err != nil {
			return nil
		}
		if a >= int64(len(nb)) {
			resp.StatusCode, resp.Status = 416, "416 Requested Range Not Satisfiable"
			testenv.ReplaceBody(resp, []byte(`{"code":"bad_request","message":"range"}`))
			return nil
		}
		b = min(b, int64(len(nb))-1)
		resp.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, len(nb)))
		testenv.ReplaceBody(resp, nb[a:b+1])
		return nil
	}
}

// namesPath reports whether err names p or one of its ancestors (a refusal while resolving
// /d for /d/a names /d; the top-level listing is "top level").
func namesPath(err error, p string) bool {
	msg := err.Error()
	for q := p; ; q = path.Dir(q) {
		if q == "/" {
			return strings.Contains(msg, "top level") || strings.Contains(msg, " / ") || strings.Contains(msg, "list /:")
		}
		if strings.Contains(msg, q+":") || strings.Contains(msg, q+" ") || strings.HasSuffix(msg, q) {
			return true
		}
	}
}

// normalize removes the object's position (chunk index) from an error message, to compare
// failure messages for oracles.
func normalize(msg string) string {
	return chunkIndex.ReplaceAllString(msg, "chunk N")
}

var chunkIndex = regexp.MustCompile(`chunk [0-9]+`)

// expectListFails lists p and checks that it fails (any error: a server refusing to serve its
// own damaged state answers 5xx) without returning entries.
func expectListFails(t testing.TB, c *client.Client, p string) error {
	t.Helper()
	es, err := c.List(context.Background(), p)
	if err == nil || es != nil {
		t.Fatalf("list %s: %d entries, %v", p, len(es), err)
	}
	return err
}

// jsonResponse builds an answer to req.
func jsonResponse(req *http.Request, status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}
}
