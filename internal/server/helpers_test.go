package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/blobstore"
	"coffer/internal/blobstore/disk"
	"coffer/internal/metastore/sqlite"
	"coffer/tree"
)

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// env is a server on real SQLite and disk stores in t.TempDir(), over loopback HTTP.
type env struct {
	t     testing.TB
	dir   string
	srv   *Server
	ts    *httptest.Server
	meta  *sqlite.Store
	blobs *disk.Store
	clock *clock
	logs  *syncBuffer
}

func newEnv(t testing.TB, mods ...func(*Config)) *env {
	t.Helper()
	return newEnvBlobs(t, "", mods...)
}

// newEnvBlobs is newEnv with the blob store in blobDir ("" = the data directory).
func newEnvBlobs(t testing.TB, blobDir string, mods ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if blobDir == "" {
		blobDir = dir
	}
	meta, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	blobs, err := disk.New(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, meta: meta, blobs: blobs, logs: &syncBuffer{},
		clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	cfg := Config{
		Meta:   meta,
		Blobs:  blobs,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Secret: bytes.Repeat([]byte{7}, 32),
		Now:    e.clock.Now,
	}
	for _, m := range mods {
		m(&cfg)
	}
	e.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(func() { e.srv.Close(); e.ts.Close() })
	return e
}

// request sends body (nil, []byte sent raw, or a value sent as JSON) and returns the response.
func (e *env) request(method, path, token string, body any, hdr ...http.Header) *http.Response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range hdr {
		for k, v := range h {
			req.Header[k] = v
		}
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// call is request plus decoding: out on 2xx, api.Error otherwise.
func (e *env) call(method, path, token string, in, out any, hdr ...http.Header) (int, api.Error) {
	e.t.Helper()
	resp := e.request(method, path, token, in, hdr...)
	defer resp.Body.Close()
	var ae api.Error
	if resp.StatusCode >= 300 {
		if err := json.NewDecoder(resp.Body).Decode(&ae); err != nil {
			e.t.Fatalf("%s %s: status %d with a non-JSON error body: %v", method, path, resp.StatusCode, err)
		}
		if ae.Code == "" || ae.Message == "" {
			e.t.Fatalf("%s %s: error body without code or message: %+v", method, path, ae)
		}
		return resp.StatusCode, ae
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			e.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode, ae
}

// wantErr checks status and code.
func wantErr(t *testing.T, status int, ae api.Error, wantStatus int, wantCode api.Code) {
	t.Helper()
	if status != wantStatus || ae.Code != wantCode {
		t.Fatalf("got %d %s (%q), want %d %s", status, ae.Code, ae.Message, wantStatus, wantCode)
	}
}

// ---- a test client built on the real format package ----

type user struct {
	e        *env
	name     string
	password []byte
	kdf      format.KDFParams
	acct     coffer.AccountID
	mk       format.MasterKey
	bundle   *format.Bundle
	signer   ed25519.PrivateKey
	token    string
	session  string

	head        *format.Head
	live        map[coffer.NodeID]*format.Record
	keys        map[coffer.NodeID]format.NodeKey
	blobsOf     map[*format.Record][]coffer.BlobID
	root, trash coffer.NodeID
}

func cheapKDF() format.KDFParams {
	k := format.DefaultKDF()
	k.Time, k.MemoryKiB, k.Threads = 1, 64, 1
	return k
}

func apiKDF(k format.KDFParams) api.KDF {
	return api.KDF{Time: k.Time, MemoryKiB: k.MemoryKiB, Threads: k.Threads, Salt: k.Salt[:]}
}

func fromAPIKDF(k api.KDF) format.KDFParams {
	return format.KDFParams{Time: k.Time, MemoryKiB: k.MemoryKiB, Threads: k.Threads, Salt: [16]byte(k.Salt)}
}

// newUser prepares an account (keys, bundle, root and trash) without signing up.
func (e *env) newUser(name string) (*user, api.SignupRequest) {
	acct := coffer.NewAccountID()
	u := &user{e: e, name: name, password: []byte("pw-" + name), kdf: cheapKDF(), acct: acct,
		mk: format.NewMasterKey(), bundle: format.NewBundle(acct),
		live: map[coffer.NodeID]*format.Record{}, keys: map[coffer.NodeID]format.NodeKey{},
		blobsOf: map[*format.Record][]coffer.BlobID{}}
	u.signer = u.bundle.SigningKey()
	lk := format.DerivePasswordKeys(u.password, u.kdf)
	rlk := format.DeriveRecoveryKeys(u.mk.RecoveryKey())
	root := u.folderRole(coffer.NodeID{}, "root", format.RoleRoot)
	trash := u.folderRole(coffer.NodeID{}, "trash", format.RoleTrash)
	u.root, u.trash = root.Node, trash.Node
	commit, _ := u.build(root, trash)
	req := api.SignupRequest{
		Username:          name,
		Account:           acct,
		KDF:               apiKDF(u.kdf),
		LoginKey:          lk.Login.Public().(ed25519.PublicKey),
		MasterKey:         format.SealMasterKey(u.mk, format.PurposePassword, acct, u.kdf, lk.Wrap),
		RecoveryLoginKey:  rlk.Login.Public().(ed25519.PublicKey),
		RecoveryMasterKey: format.SealMasterKey(u.mk, format.PurposeRecovery, acct, format.KDFParams{}, rlk.Wrap),
		Bundle:            u.bundle.Seal(u.mk),
		BundleGeneration:  u.bundle.Generation,
		PublicKeys:        u.bundle.PublicKeys(name).Marshal(),
		Tree:              u.bundle.Tree,
		Commit:            commit,
		Device:            "test",
	}
	return u, req
}

// signup creates the account and applies the first commit locally.
func (e *env) signup(name string) *user {
	e.t.Helper()
	u, req := e.newUser(name)
	var resp api.LoginResponse
	if st, ae := e.call("POST", "/v1/signup", "", req, &resp); st != 200 {
		e.t.Fatalf("signup %s: %d %+v", name, st, ae)
	}
	u.token, u.session = resp.Token, resp.Session
	u.accept(req.Commit)
	return u
}

func (u *user) tree() coffer.TreeID { return u.bundle.Tree }

func (u *user) wrapFor(parent coffer.NodeID) format.WrapKey {
	if parent.IsZero() {
		return u.bundle.TreeKey.WrapKey()
	}
	nk, ok := u.keys[parent]
	if !ok {
		nk = format.NewNodeKey() // unknown parent: the server cannot tell
	}
	return nk.WrapKey()
}

func (u *user) seal(kind format.Kind, node, parent coffer.NodeID, version uint64, prev [32]byte, body *format.Body) *format.Record {
	u.e.t.Helper()
	nk, ok := u.keys[node]
	if !ok {
		nk = format.NewNodeKey()
		u.keys[node] = nk
	}
	r, err := format.SealRecord(kind, node, parent, version, prev, nk, u.wrapFor(parent), body, u.signer)
	if err != nil {
		u.e.t.Fatal(err)
	}
	return r
}

func (u *user) folderRole(parent coffer.NodeID, name string, role format.Role) *format.Record {
	return u.seal(format.KindFolder, coffer.NewNodeID(), parent, 1, [32]byte{},
		&format.Body{Name: name, MTime: 1, Mode: 0o755, Role: role})
}

func (u *user) folder(parent coffer.NodeID, name string) *format.Record {
	return u.folderRole(parent, name, format.RoleNone)
}

func emptyContent() *format.Content {
	k := format.NewContentKey()
	return &format.Content{Key: k, Commitment: k.Commitment(), ChunkSize: format.DefaultChunkSize}
}

// file is a new file record; blobs are listed with it in the commit (the body has no chunks:
// the server cannot see the body anyway).
func (u *user) file(parent coffer.NodeID, name string, blobs ...coffer.BlobID) *format.Record {
	r := u.seal(format.KindFile, coffer.NewNodeID(), parent, 1, [32]byte{},
		&format.Body{Name: name, MTime: 1, Mode: 0o644, Content: emptyContent()})
	u.blobsOf[r] = blobs
	return r
}

// next is the next version of a live node under parent (a move when parent changes).
func (u *user) next(node, parent coffer.NodeID, blobs ...coffer.BlobID) *format.Record {
	cur := u.live[node]
	if cur == nil {
		u.e.t.Fatalf("next: node %v not live", node)
	}
	body := &format.Body{Name: "v", MTime: 2, Mode: 0o644}
	if cur.Kind == format.KindFile {
		body.Content = emptyContent()
	}
	r := u.seal(cur.Kind, node, parent, cur.Version+1, cur.Hash(), body)
	u.blobsOf[r] = blobs
	return r
}

func (u *user) tomb(node coffer.NodeID) *format.Record {
	cur := u.live[node]
	return format.SealTombstone(node, cur.Parent, cur.Version+1, cur.Hash(), u.signer)
}

// model is the user's view of the tree state, as a tree.Source.
type model struct {
	live map[coffer.NodeID]*format.Record
}

func (m model) Children(f coffer.NodeID) ([]format.Entry, error) {
	var out []format.Entry
	for id, r := range m.live {
		if r.Parent == f {
			out = append(out, format.Entry{Node: id, Hash: r.Hash()})
		}
	}
	slices.SortFunc(out, func(a, b format.Entry) int { return bytes.Compare(a.Node[:], b.Node[:]) })
	return out, nil
}

func (m model) Bucket(b uint8) ([]format.FolderSummary, error) {
	folders := map[coffer.NodeID]bool{}
	for _, r := range m.live {
		if format.BucketOf(r.Parent) == b {
			folders[r.Parent] = true
		}
	}
	var out []format.FolderSummary
	for f := range folders {
		ch, _ := m.Children(f)
		out = append(out, format.FolderSummary{Folder: f, Count: uint64(len(ch)), Root: format.FolderRoot(f, ch)})
	}
	slices.SortFunc(out, func(a, b format.FolderSummary) int { return bytes.Compare(a.Folder[:], b.Folder[:]) })
	return out, nil
}

func (m model) Buckets() (*[256][32]byte, error) {
	var out [256][32]byte
	for b := range 256 {
		fs, _ := m.Bucket(uint8(b))
		if len(fs) > 0 {
			out[b] = format.BucketHash(uint8(b), fs)
		}
	}
	return &out, nil
}

// build makes a signed commit of recs on top of the user's last head.
func (u *user) build(recs ...*format.Record) (api.CommitRequest, *format.Head) {
	u.e.t.Helper()
	ops := make([]tree.Op, len(recs))
	req := api.CommitRequest{}
	for i, r := range recs {
		ops[i] = tree.Op{Node: r.Node, Parent: r.Parent, Hash: r.Hash(), Tombstone: r.Kind == format.KindTombstone}
		if cur := u.live[r.Node]; cur != nil {
			ops[i].Existed, ops[i].OldParent = true, cur.Parent
		}
		req.Records = append(req.Records, api.CommitRecord{Record: r.Marshal(), Blobs: u.blobsOf[r]})
	}
	res, err := tree.Apply(model{u.live}, ops)
	if err != nil {
		u.e.t.Fatal(err)
	}
	h := &format.Head{Tree: u.tree(), Version: 1, StateRoot: res.StateRoot, OpsHash: res.OpsHash, Time: 1000}
	if u.head != nil {
		h.Version, h.Prev = u.head.Version+1, u.head.Hash()
		req.BaseVersion = u.head.Version
	}
	h.Sign(u.signer)
	req.Head = h.Marshal()
	return req, h
}

// accept applies a successful commit to the local model.
func (u *user) accept(req api.CommitRequest) {
	u.e.t.Helper()
	h, err := format.ParseHead(req.Head)
	if err != nil {
		u.e.t.Fatal(err)
	}
	for _, cr := range req.Records {
		r, err := format.ParseRecord(cr.Record)
		if err != nil {
			u.e.t.Fatal(err)
		}
		if r.Kind == format.KindTombstone {
			delete(u.live, r.Node)
		} else {
			u.live[r.Node] = r
		}
	}
	u.head = h
}

// post sends a commit and returns the status and error.
func (u *user) post(req api.CommitRequest) (int, api.Error, api.CommitResponse) {
	u.e.t.Helper()
	var resp api.CommitResponse
	st, ae := u.e.call("POST", "/v1/trees/"+u.tree().String()+"/commit", u.token, req, &resp)
	return st, ae, resp
}

// commit builds, posts and (on success) applies a commit; it fails the test on an error.
func (u *user) commit(recs ...*format.Record) api.CommitResponse {
	u.e.t.Helper()
	req, _ := u.build(recs...)
	st, ae, resp := u.post(req)
	if st != 200 {
		u.e.t.Fatalf("commit: %d %s: %s", st, ae.Code, ae.Message)
	}
	u.accept(req)
	return resp
}

// login runs the challenge-response login with the user's password.
func (u *user) login(device string) (api.LoginResponse, int, api.Error) {
	return u.loginWith(u.password, device)
}

func (u *user) loginWith(password []byte, device string) (api.LoginResponse, int, api.Error) {
	u.e.t.Helper()
	var pre api.PreloginResponse
	if st, ae := u.e.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: u.name}, &pre); st != 200 {
		return api.LoginResponse{}, st, ae
	}
	keys := format.DerivePasswordKeys(password, fromAPIKDF(pre.KDF))
	sig := ed25519.Sign(keys.Login, format.LoginMessage(pre.Account, u.name, [32]byte(pre.Challenge), format.ProofLogin))
	var resp api.LoginResponse
	st, ae := u.e.call("POST", "/v1/login/finish", "", api.LoginRequest{
		Username: u.name, Challenge: pre.Challenge, Signature: sig, Device: device}, &resp)
	return resp, st, ae
}

// upload stores a blob in the user's tree.
func (u *user) upload(data []byte) (api.BlobPutResponse, int, api.Error) {
	u.e.t.Helper()
	var resp api.BlobPutResponse
	st, ae := u.e.putBlob("/v1/trees/"+u.tree().String(), u.token, data, &resp)
	return resp, st, ae
}

// putBlob uploads data as an honest client does: PUT prefix/blobs/<its SHA-256> with its CRC-32C.
// prefix is /v1/trees/{tree} or /v1/links/{link}.
func (e *env) putBlob(prefix, token string, data []byte, out any) (int, api.Error) {
	e.t.Helper()
	return e.putBlobAs(prefix, token, sha256.Sum256(data), crcOf(data), data, out)
}

// crcOf is the Coffer-CRC32C header value of data.
func crcOf(data []byte) string { return api.FormatCRC32C(crc32.Checksum(data, blobstore.CRC32C)) }

// putBlobAs uploads data under the given ID and Coffer-CRC32C header value ("" leaves it out).
func (e *env) putBlobAs(prefix, token string, id coffer.BlobID, crc string, data []byte, out any) (int, api.Error) {
	e.t.Helper()
	h := http.Header{}
	if crc != "" {
		h.Set(api.HeaderCRC32C, crc)
	}
	return e.call("PUT", prefix+"/blobs/"+id.String(), token, data, out, h)
}

// listing is a parsed folder listing.
type listing struct {
	head     *format.Head
	buckets  *[256][32]byte
	bucket   []format.FolderSummary
	children []*format.Record
	ended    bool
}

func (u *user) list(folder coffer.NodeID) *listing {
	u.e.t.Helper()
	resp := u.e.request("GET", "/v1/trees/"+u.tree().String()+"/folders/"+folder.String(), u.token, nil)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != api.ListingContentType {
		u.e.t.Fatalf("list: status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	l, err := parseListing(bufio.NewReader(resp.Body))
	if err != nil {
		u.e.t.Fatal(err)
	}
	return l
}

func parseListing(r *bufio.Reader) (*listing, error) {
	l := &listing{}
	want := []byte{api.FrameHead, api.FrameBuckets, api.FrameBucket}
	for i := 0; ; i++ {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("frame %d: %w", i, err)
		}
		payload := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, fmt.Errorf("frame %d payload: %w", i, err)
		}
		typ := hdr[0]
		if i < len(want) && typ != want[i] {
			return nil, fmt.Errorf("frame %d: type %d, want %d", i, typ, want[i])
		}
		switch typ {
		case api.FrameHead:
			h, err := format.ParseHead(payload)
			if err != nil {
				return nil, err
			}
			l.head = h
		case api.FrameBuckets:
			if len(payload) != 256*32 {
				return nil, fmt.Errorf("buckets frame: %d bytes", len(payload))
			}
			l.buckets = new([256][32]byte)
			for b := range 256 {
				copy(l.buckets[b][:], payload[b*32:])
			}
		case api.FrameBucket:
			if len(payload)%56 != 0 {
				return nil, fmt.Errorf("bucket frame: %d bytes", len(payload))
			}
			for o := 0; o < len(payload); o += 56 {
				l.bucket = append(l.bucket, format.FolderSummary{Folder: coffer.NodeID(payload[o : o+16]),
					Count: binary.BigEndian.Uint64(payload[o+16:]), Root: [32]byte(payload[o+24 : o+56])})
			}
		case api.FrameRecord:
			rec, err := format.ParseRecord(payload)
			if err != nil {
				return nil, err
			}
			l.children = append(l.children, rec)
		case api.FrameEnd:
			l.ended = true
			if _, err := r.ReadByte(); err != io.EOF {
				return nil, fmt.Errorf("data after the end frame")
			}
			return l, nil
		default:
			return nil, fmt.Errorf("unknown frame type %d", typ)
		}
	}
}

// verify checks a listing the way a client does: head signature, then tree.VerifyListing.
func (l *listing) verify(folder coffer.NodeID) error {
	if err := l.head.VerifySignature(); err != nil {
		return err
	}
	entries := make([]format.Entry, len(l.children))
	for i, c := range l.children {
		entries[i] = format.Entry{Node: c.Node, Hash: c.Hash()}
	}
	return tree.VerifyListing(l.head.StateRoot, l.buckets, l.bucket, folder, entries)
}

func treePath(u *user, rest string) string { return "/v1/trees/" + u.tree().String() + rest }

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
