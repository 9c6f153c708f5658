package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/metastore"
	"coffer/internal/server"
	"coffer/internal/testenv"
)

// uploadFixture: alice with /inbox (holding note.txt) and an upload-only link to it.
type uploadFixture struct {
	env   *testenv.Env
	alice *client.Client
	link  *client.LinkInfo
}

func newUploadFixture(t *testing.T, opts client.LinkOptions) *uploadFixture {
	t.Helper()
	ctx := context.Background()
	f := &uploadFixture{env: testenv.New(t)}
	f.alice = f.env.Client(t, "alice")
	src := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(src, []byte("alice's own note"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.Mkdir(ctx, "/inbox", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.Upload(ctx, []string{src}, "/inbox", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	opts.UploadOnly = true
	var err error
	if f.link, err = f.alice.CreateLink(ctx, "/inbox", opts); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestUploadLinkRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newUploadFixture(t, client.LinkOptions{})
	if !f.link.UploadOnly || !f.link.IsDir {
		t.Fatalf("link info %+v", f.link)
	}
	// The stranger's files: a file whose name collides, a big file, a folder with a subfolder and
	// an empty folder.
	src := t.TempDir()
	big := make([]byte, 5<<20+17)
	rand.Read(big)
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(src, "note.txt"), []byte("the stranger's note"))
	write(filepath.Join(src, "big.bin"), big)
	write(filepath.Join(src, "photos", "2026", "beach.jpg"), []byte("jpeg"))
	if err := os.MkdirAll(filepath.Join(src, "photos", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}

	// A read visit of an upload-only link is refused before anything is counted.
	if _, err := client.OpenLink(ctx, visitorConfig(f.env), f.link.URL, client.LinkOpenOptions{}); !errors.Is(err, client.ErrLinkUploadOnly) {
		t.Fatalf("OpenLink(upload-only): %v", err)
	}
	up, err := client.OpenUploadLink(ctx, visitorConfig(f.env), f.link.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if up.Owner() != "alice" {
		t.Fatalf("owner %q", up.Owner())
	}
	res, err := up.Upload(ctx, []string{filepath.Join(src, "note.txt"), filepath.Join(src, "big.bin"), filepath.Join(src, "photos")}, client.TransferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 3 || res.Folders != 1 || res.Bytes != int64(len(big))+19+4 {
		t.Fatalf("upload result %+v", res)
	}
	// Nothing is visible before the import.
	if es, _ := f.alice.List(ctx, "/inbox"); len(es) != 1 {
		t.Fatalf("inbox before import: %d entries", len(es))
	}

	// Keep the stored drops, to replay one whose deletion was "lost" after its import.
	acct, err := f.env.Meta.AccountByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var ds metastore.Drops = f.env.Meta
	stored, err := ds.Drops(ctx, acct.ID, 0, 100)
	if err != nil || len(stored) != 4 {
		t.Fatalf("stored drops: %d %v", len(stored), err)
	}
	rs, err := f.alice.ImportDrops(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("%d drops", len(rs))
	}
	var paths []string
	for _, r := range rs {
		if r.Status != client.DropImported || r.Link != f.link.ID {
			t.Fatalf("drop %+v", r)
		}
		paths = append(paths, r.Path)
	}
	sort.Strings(paths)
	want := []string{"/inbox/big.bin", "/inbox/note (1).txt", "/inbox/photos/2026/beach.jpg", "/inbox/photos/empty"}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Fatalf("imported as %v, want %v", paths, want)
	}
	for _, p := range want {
		e, err := f.alice.Stat(ctx, p)
		if err != nil || e.Origin != f.link.ID {
			t.Fatalf("%s: origin %q, %v", p, e.Origin, err)
		}
	}
	if e, _ := f.alice.Stat(ctx, "/inbox/note.txt"); e.Origin != "" {
		t.Fatal("alice's own file marked as an anonymous upload")
	}
	var got bytes.Buffer
	if err := f.alice.Cat(ctx, "/inbox/big.bin", &got); err != nil || !bytes.Equal(got.Bytes(), big) {
		t.Fatalf("big.bin: %v", err)
	}
	got.Reset()
	if err := f.alice.Cat(ctx, "/inbox/note (1).txt", &got); err != nil || got.String() != "the stranger's note" {
		t.Fatalf("note (1).txt: %q %v", got.String(), err)
	}
	if e, _ := f.alice.Stat(ctx, "/inbox/big.bin"); e.Mode != 0o600 {
		t.Fatalf("mode %o", e.Mode)
	}
	// Imported drops are gone from the server; a second import finds nothing.
	if rs, err := f.alice.ImportDrops(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("second import: %d, %v", len(rs), err)
	}
	// A drop imported before but still listed (its deletion lost) is not imported twice.
	for _, d := range stored[:2] {
		if _, err := ds.CreateDrop(ctx, d, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	rs, err = f.alice.ImportDrops(ctx)
	if err != nil || len(rs) != 2 || rs[0].Status != client.DropAlreadyImported || rs[1].Status != client.DropAlreadyImported {
		t.Fatalf("replayed drops: %+v %v", rs, err)
	}
	if es, _ := f.alice.List(ctx, "/inbox"); len(es) != 4 { // note, note (1), big, photos
		t.Fatalf("inbox after replay: %d entries", len(es))
	}
	// A second upload of the same folder merges into the existing folders, renaming files.
	if _, err := up.Upload(ctx, []string{filepath.Join(src, "photos")}, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.ImportDrops(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.Stat(ctx, "/inbox/photos/2026/beach (1).jpg"); err != nil {
		t.Fatal(err)
	}
	ls, err := f.alice.Links(ctx)
	if err != nil || len(ls) != 1 || ls[0].Uploads != 8 || !ls[0].UploadOnly {
		t.Fatalf("links: %+v %v", ls, err)
	}
}

func TestUploadLinkLimitsAndRevocation(t *testing.T) {
	ctx := context.Background()
	f := newUploadFixture(t, client.LinkOptions{MaxUploads: 1})
	src := t.TempDir()
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(src, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up, err := client.OpenUploadLink(ctx, visitorConfig(f.env), f.link.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Upload(ctx, []string{filepath.Join(src, "a")}, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Upload(ctx, []string{filepath.Join(src, "b")}, client.TransferOptions{}); !errors.Is(err, client.ErrLinkGone) {
		t.Fatalf("upload past the limit: %v", err)
	}
	g := newUploadFixture(t, client.LinkOptions{})
	up, err = client.OpenUploadLink(ctx, visitorConfig(g.env), g.link.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.alice.RevokeLink(ctx, g.link.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Upload(ctx, []string{filepath.Join(src, "a")}, client.TransferOptions{}); !errors.Is(err, client.ErrLinkGone) {
		t.Fatalf("upload after revocation: %v", err)
	}
	if _, err := client.OpenUploadLink(ctx, visitorConfig(g.env), g.link.URL, client.LinkOpenOptions{}); !errors.Is(err, client.ErrLinkGone) {
		t.Fatalf("open after revocation: %v", err)
	}
}

func TestUploadLinkQuota(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t, func(c *server.Config) { c.DefaultQuota = 3 << 20 })
	alice := env.Client(t, "alice")
	if _, err := alice.Mkdir(ctx, "/inbox", false); err != nil {
		t.Fatal(err)
	}
	li, err := alice.CreateLink(ctx, "/inbox", client.LinkOptions{UploadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(src, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	up, err := client.OpenUploadLink(ctx, visitorConfig(env), li.URL, client.LinkOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = up.Upload(ctx, []string{src}, client.TransferOptions{})
	if !errors.Is(err, coffer.ErrQuota) || !strings.Contains(err.Error(), "quota") || !strings.Contains(err.Error(), "big.bin") {
		t.Fatalf("over quota: %v", err)
	}
}

// TestUploadLinkSubstitutedOwnerKeys: a server serving its own keys (and re-signing the link
// record with its own identity, which its own public-key record carries) is caught by the
// fingerprint sealed under the link secret.
func TestUploadLinkSubstitutedOwnerKeys(t *testing.T) {
	ctx := context.Background()
	f := newUploadFixture(t, client.LinkOptions{})
	eve := &format.Bundle{Account: coffer.NewAccountID(), Generation: 1}
	rand.Read(eve.SigningSeed[:])
	rand.Read(eve.KEMSeed[:])
	evePub := eve.PublicKeys("alice")
	f.env.SetHook(rewriteJSON("/v1/links/"+linkHex(t, f.link.URL)+"/open", func(r *api.LinkOpenResponse) {
		fl, err := format.ParseLink(r.Record)
		if err != nil {
			t.Error(err)
			return
		}
		copy(fl.Owner[:], eve.SigningKey().Public().(ed25519.PublicKey))
		signed := fl.Marshal()[:format.LinkLen-64]
		sig := ed25519.Sign(eve.SigningKey(), append([]byte("coffer/v1 link\x00"), signed...))
		r.Record = append(signed, sig...)
		r.OwnerPublicKeys = evePub.Marshal()
	}))
	_, err := client.OpenUploadLink(ctx, visitorConfig(f.env), f.link.URL, client.LinkOpenOptions{})
	if !errors.Is(err, coffer.ErrAuth) || !strings.Contains(err.Error(), "substituted") {
		t.Fatalf("substituted owner keys: %v", err)
	}
	// Only the keys swapped (alice's record kept): the self-signature names another key.
	f.env.SetHook(rewriteJSON("/v1/links/"+linkHex(t, f.link.URL)+"/open", func(r *api.LinkOpenResponse) {
		r.OwnerPublicKeys = evePub.Marshal()
	}))
	if _, err := client.OpenUploadLink(ctx, visitorConfig(f.env), f.link.URL, client.LinkOpenOptions{}); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("swapped owner keys: %v", err)
	}
}

func linkHex(t *testing.T, url string) string {
	t.Helper()
	_, id, _, err := format.ParseLinkURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(id[:])
}

// rawVisitor is a hand-made visitor of an upload-only link: it speaks HTTP and builds drops byte
// by byte (FORMAT.md §12.3), so it can send what the library refuses to make.
type rawVisitor struct {
	t      *testing.T
	base   string
	hexID  string
	id     format.LinkID
	token  string
	lk     [32]byte
	owner  *format.PublicKeys
	client *http.Client
}

func newRawVisitor(t *testing.T, env *testenv.Env, url string) *rawVisitor {
	t.Helper()
	server, id, secret, err := format.ParseLinkURL(url)
	if err != nil {
		t.Fatal(err)
	}
	v := &rawVisitor{t: t, base: server, id: id, hexID: hex.EncodeToString(id[:]), client: http.DefaultClient}
	keys := format.DeriveLinkKeys(secret, nil, format.KDFParams{})
	var ch api.LinkChallengeResponse
	v.post("/challenge", "", nil, &ch)
	sig := ed25519.Sign(keys.Auth, format.LinkAuthMessage(id, [32]byte(ch.Challenge)))
	var resp api.LinkOpenResponse
	v.post("/open", "", jsonMarshal(api.LinkOpenRequest{Challenge: ch.Challenge, Signature: sig}), &resp)
	fl, err := format.ParseLink(resp.Record)
	if err != nil {
		t.Fatal(err)
	}
	uk, err := fl.OpenUpload(keys)
	if err != nil {
		t.Fatal(err)
	}
	if v.owner, err = format.ParsePublicKeys(resp.OwnerPublicKeys); err != nil {
		t.Fatal(err)
	}
	v.token, v.lk = resp.Token, uk.LinkKey
	return v
}

func (v *rawVisitor) post(path, ctype string, body []byte, out any) int {
	v.t.Helper()
	method := "POST"
	if path == "/blobs" { // a blob upload: PUT under its SHA-256, with its CRC-32C
		sum := sha256.Sum256(body)
		method, path = "PUT", path+"/"+hex.EncodeToString(sum[:])
	}
	req, _ := http.NewRequest(method, v.base+"/v1/links/"+v.hexID+path, bytes.NewReader(body))
	if method == "PUT" {
		req.Header.Set(api.HeaderCRC32C, api.FormatCRC32C(crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))))
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			v.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func tlv(tag byte, v []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{tag}, uint32(len(v))), v...)
}

// content encodes a one-chunk content description of plain, whose chunk it uploads.
func (v *rawVisitor) content(plain []byte, edit func(c []byte) []byte) ([]byte, coffer.BlobID) {
	ck := format.NewContentKey()
	blob := ck.Cipher().Seal(nil, plain, 0, true)
	var put api.BlobPutResponse
	if st := v.post("/blobs", "application/octet-stream", blob, &put); st != 200 {
		v.t.Fatalf("blob put: %d", st)
	}
	commit := ck.Commitment()
	hash := sha256.Sum256(plain)
	c := append(append([]byte{}, ck[:]...), commit[:]...)
	c = binary.BigEndian.AppendUint64(c, uint64(len(plain)))
	c = binary.BigEndian.AppendUint32(c, format.DefaultChunkSize)
	c = append(c, hash[:]...)
	c = binary.BigEndian.AppendUint32(c, 1)
	c = append(c, put.Blob[:]...)
	c = binary.BigEndian.AppendUint64(c, 0)
	c = binary.BigEndian.AppendUint32(c, uint32(len(plain)+16))
	if edit != nil {
		c = edit(c)
	}
	return c, put.Blob
}

// send seals a drop plaintext made of name, mode and content (and optionally a bad
// authenticator) and posts it.
func (v *rawVisitor) send(name string, mode uint32, content []byte, blob coffer.BlobID, wrongAuth bool) int {
	v.t.Helper()
	lk := v.lk
	if wrongAuth {
		lk[0] ^= 1
	}
	auth, _ := hkdf.Key(sha256.New, lk[:], nil, "coffer/v1 drop auth", 32)
	pt := tlv(1, []byte(name))
	pt = append(pt, tlv(2, make([]byte, 8))...)
	pt = append(pt, tlv(3, binary.BigEndian.AppendUint32(nil, mode))...)
	pt = append(pt, tlv(5, auth)...)
	pt = append(pt, tlv(6, content)...)
	var dropID [16]byte
	rand.Read(dropID[:])
	hdr := append(append(append([]byte("CFD1"), v.id[:]...), dropID[:]...), v.owner.Account[:]...)
	pub, err := hpke.MLKEM768X25519().NewPublicKey(v.owner.KEM)
	if err != nil {
		v.t.Fatal(err)
	}
	sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), append([]byte("coffer/v1 drop\x00"), hdr...), pt)
	if err != nil {
		v.t.Fatal(err)
	}
	d := append(binary.BigEndian.AppendUint32(hdr, uint32(len(sealed))), sealed...)
	return v.post("/drops", "application/json", jsonMarshal(api.DropCreateRequest{Drop: d, Blobs: []coffer.BlobID{blob}}), nil)
}

// TestHostileDrops: drops a library client would never make are refused by the owner's import
// with an error naming the problem, and nothing of them is committed.
func TestHostileDrops(t *testing.T) {
	ctx := context.Background()
	f := newUploadFixture(t, client.LinkOptions{})
	v := newRawVisitor(t, f.env, f.link.URL)
	good, gb := v.content([]byte("fine"), nil)
	if st := v.send("good.txt", 0o644, good, gb, false); st != 200 {
		t.Fatalf("good drop: %d", st)
	}
	badCommit, bb := v.content([]byte("x"), func(c []byte) []byte { c[40] ^= 1; return c })
	manyChunks, mb := v.content([]byte("x"), func(c []byte) []byte { binary.BigEndian.PutUint32(c[108:], 0xffffffff); return c })
	okContent, ob := v.content([]byte("x"), nil)
	cases := []struct {
		name    string
		mode    uint32
		content []byte
		blob    coffer.BlobID
		wrong   bool
		want    string
	}{
		{"bad-commitment.txt", 0o644, badCommit, bb, false, "authentication failed"},
		{"../x", 0o644, okContent, ob, false, "name"},
		{"many.txt", 0o644, manyChunks, mb, false, "content chunks"},
		{"setuid", 0o4755, okContent, ob, false, "mode"},
		{"forged.txt", 0o644, okContent, ob, true, "authentication failed"},
		{"unlisted.txt", 0o644, okContent, gb, false, "did not list"},
	}
	for _, c := range cases {
		if st := v.send(c.name, c.mode, c.content, c.blob, c.wrong); st != 200 {
			t.Fatalf("%s: server refused the drop: %d", c.name, st)
		}
	}
	rs, err := f.alice.ImportDrops(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1+len(cases) {
		t.Fatalf("%d results", len(rs))
	}
	if rs[0].Status != client.DropImported || rs[0].Path != "/inbox/good.txt" {
		t.Fatalf("good drop: %+v", rs[0])
	}
	for i, c := range cases {
		r := rs[i+1]
		t.Logf("%s: %v", c.name, r.Err)
		if r.Status != client.DropRefused || r.Err == nil || !strings.Contains(r.Err.Error(), c.want) || !strings.Contains(r.Err.Error(), r.ID) {
			t.Errorf("%s: %+v (err %v), want refused mentioning %q", c.name, r, r.Err, c.want)
		}
	}
	es, err := f.alice.List(ctx, "/inbox")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "good.txt,note.txt" {
		t.Fatalf("inbox holds %v", names)
	}
	// Refused drops were deleted: nothing pending.
	if rs, err := f.alice.ImportDrops(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("after import: %d pending, %v", len(rs), err)
	}
}

func TestUploadLinkPassword(t *testing.T) {
	ctx := context.Background()
	f := newUploadFixture(t, client.LinkOptions{Password: []byte("drop it here")})
	cfg := visitorConfig(f.env)
	if _, err := client.OpenUploadLink(ctx, cfg, f.link.URL, client.LinkOpenOptions{}); !errors.Is(err, client.ErrLinkNeedsPassword) {
		t.Fatalf("no password: %v", err)
	}
	pw := func(p string) client.LinkOpenOptions {
		return client.LinkOpenOptions{Password: func() ([]byte, error) { return []byte(p), nil }}
	}
	if _, err := client.OpenUploadLink(ctx, cfg, f.link.URL, pw("wrong")); !errors.Is(err, client.ErrLinkPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	up, err := client.OpenUploadLink(ctx, cfg, f.link.URL, pw("drop it here"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "x.txt")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Upload(ctx, []string{src}, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if rs, err := f.alice.ImportDrops(ctx); err != nil || len(rs) != 1 || rs[0].Path != "/inbox/x.txt" {
		t.Fatalf("import: %+v %v", rs, err)
	}
}
