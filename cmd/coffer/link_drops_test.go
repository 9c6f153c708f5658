package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// TestUploadLinks drives upload-only links through the binary: a stranger (no account) uploads a
// file and a folder; alice's ls imports them (name collision suffixed, origin marker shown); the
// stranger can read nothing; limits, revocation and expiry refuse uploads clearly.
func TestUploadLinks(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := newUser(t, srv.url, "correct horse battery staple")
	alice.ok("signup", "alice")
	local := t.TempDir()
	writeFile(t, filepath.Join(local, "note.txt"), []byte("alice's note"))
	alice.ok("mkdir", "/inbox")
	alice.ok("put", filepath.Join(local, "note.txt"), "/inbox/")
	alice.fails(exitError, "link", "create", "--upload-only", "/inbox/note.txt")
	alice.fails(exitUsage, "link", "create", "--upload-only", "--max-downloads", "3", "/inbox")
	alice.fails(exitUsage, "link", "create", "--max-uploads", "3", "/inbox")
	url := strings.TrimSpace(alice.ok("link", "create", "--upload-only", "--max-uploads", "4", "/inbox"))
	if !strings.HasPrefix(url, srv.url+"/s/") {
		t.Fatalf("link create printed %q", url)
	}

	// The stranger uploads a file (whose name is taken) and a folder with an empty subfolder.
	visitor := newUser(t, "", "")
	up := t.TempDir()
	writeFile(t, filepath.Join(up, "note.txt"), []byte("the stranger's note"))
	big := randomBytes(t, 3<<20+11)
	writeFile(t, filepath.Join(up, "scans", "big.bin"), big)
	if err := os.MkdirAll(filepath.Join(up, "scans", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := visitor.run("put", filepath.Join(up, "note.txt"), filepath.Join(up, "scans"), url)
	if r.code != 0 || !strings.Contains(r.stderr, "Uploaded 2 files") {
		t.Fatalf("anonymous put: %s", r)
	}
	// The stranger can list or read nothing, not even what they uploaded.
	if r := visitor.fails(exitError, "ls", url); !strings.Contains(r.stderr, "upload-only") {
		t.Fatalf("ls of an upload-only link: %s", r)
	}
	visitor.fails(exitError, "get", url, t.TempDir())

	// alice's ls imports them and marks their origin.
	r = alice.run("ls", "-l", "/inbox")
	if r.code != 0 || !strings.Contains(r.stderr, "Imported 3 anonymous uploads") {
		t.Fatalf("ls imported: %s", r)
	}
	var links []linkJSON
	alice.jsonOut(&links, "link", "ls", "--json")
	if len(links) != 1 || links[0].Kind != "upload-only" || links[0].Uploads != 3 || links[0].MaxUploads != 4 || links[0].Path != "/inbox" {
		t.Fatalf("link ls: %+v", links)
	}
	for _, want := range []string{"note (1).txt  (anonymous upload via link " + links[0].ID + ")", "scans/  (anonymous upload"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("ls -l lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(strings.Split(r.stdout, "note.txt")[0], "note.txt  (anonymous") {
		t.Fatalf("alice's own note marked anonymous:\n%s", r.stdout)
	}
	var e entryJSON
	alice.jsonOut(&e, "stat", "--json", "/inbox/scans/big.bin")
	if e.Origin != links[0].ID || e.Size != int64(len(big)) {
		t.Fatalf("stat --json: %+v", e)
	}
	if out := alice.ok("stat", "/inbox/note (1).txt"); !strings.Contains(out, "origin:") || !strings.Contains(out, links[0].ID) {
		t.Fatalf("stat: %s", out)
	}
	dest := t.TempDir()
	alice.ok("get", "/inbox/scans", dest)
	sameTree(t, filepath.Join(up, "scans"), filepath.Join(dest, "scans"))
	if out := alice.ok("cat", "/inbox/note (1).txt"); out != "the stranger's note" {
		t.Fatalf("cat: %q", out)
	}
	if r := alice.run("link", "drops"); r.code != 0 || !strings.Contains(r.stderr, "No new anonymous uploads") {
		t.Fatalf("link drops: %s", r)
	}
	// link drops lists what it imports.
	writeFile(t, filepath.Join(up, "late.txt"), []byte("late"))
	visitor.ok("put", filepath.Join(up, "late.txt"), url)
	var drops []dropJSON
	alice.jsonOut(&drops, "link", "drops", "--json")
	if len(drops) != 1 || drops[0].Status != "imported" || drops[0].Path != "/inbox/late.txt" || drops[0].Link != links[0].ID {
		t.Fatalf("link drops --json: %+v", drops)
	}

	// The limit (4): the fifth upload is refused clearly.
	writeFile(t, filepath.Join(up, "sixth.txt"), []byte("6"))
	if r := visitor.fails(exitNotFound, "put", filepath.Join(up, "sixth.txt"), url); !strings.Contains(r.stderr, "link revoked or expired") {
		t.Fatalf("upload past the limit: %s", r)
	}
	// Revocation and expiry.
	url2 := strings.TrimSpace(alice.ok("link", "create", "--upload-only", "/inbox"))
	alice.ok("link", "revoke", url2)
	if r := visitor.fails(exitNotFound, "put", filepath.Join(up, "late.txt"), url2); !strings.Contains(r.stderr, "link revoked or expired") {
		t.Fatalf("revoked upload link: %s", r)
	}
	url3 := strings.TrimSpace(alice.ok("link", "create", "--upload-only", "--expire", "1s", "/inbox"))
	time.Sleep(1100 * time.Millisecond)
	if r := visitor.fails(exitNotFound, "put", filepath.Join(up, "late.txt"), url3); !strings.Contains(r.stderr, "link revoked or expired") {
		t.Fatalf("expired upload link: %s", r)
	}
	// The fragment secret never reached the server.
	frag := url[strings.IndexByte(url, '#')+1:]
	if strings.Contains(srv.log(), frag) {
		t.Fatal("the link secret is in the server log")
	}
}

// TestUploadLinkQuota: an upload over the owner's quota fails clearly (exit 7).
func TestUploadLinkQuota(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--quota", "2MiB")
	alice := newUser(t, srv.url, "correct horse battery staple")
	alice.ok("signup", "alice")
	alice.ok("mkdir", "/inbox")
	url := strings.TrimSpace(alice.ok("link", "create", "--upload-only", "/inbox"))
	f := writeFile(t, filepath.Join(t.TempDir(), "big.bin"), randomBytes(t, 3<<20))
	r := newUser(t, "", "").fails(exitQuota, "put", f, url)
	if !strings.Contains(r.stderr, "quota") || !strings.Contains(r.stderr, "big.bin") {
		t.Fatalf("over quota: %s", r)
	}
}

// TestUploadLinkHostile: a server substituting the owner's keys is refused by the stranger's
// put; a drop a library client would never make is refused by alice's import, clearly, and not
// committed.
func TestUploadLinkHostile(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	target, _ := url.Parse(srv.url)
	var swapKeys atomic.Bool
	eve := &format.Bundle{Account: coffer.NewAccountID(), Generation: 1}
	rand.Read(eve.SigningSeed[:])
	rand.Read(eve.KEMSeed[:])
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !swapKeys.Load() || !strings.HasSuffix(resp.Request.URL.Path, "/open") || resp.StatusCode != 200 {
			return nil
		}
		var r api.LinkOpenResponse
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		// The server's own identity: link record re-signed, its own (self-signed) keys served.
		fl, err := format.ParseLink(r.Record)
		if err != nil {
			return err
		}
		copy(fl.Owner[:], eve.SigningKey().Public().(ed25519.PublicKey))
		signed := fl.Marshal()[:format.LinkLen-64]
		r.Record = append(signed, ed25519.Sign(eve.SigningKey(), append([]byte("coffer/v1 link\x00"), signed...))...)
		r.OwnerPublicKeys = eve.PublicKeys(r.Owner).Marshal()
		nb, _ := json.Marshal(r)
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(nb)), int64(len(nb))
		resp.Header.Set("Content-Length", strconv.Itoa(len(nb)))
		return nil
	}
	ps := httptest.NewServer(proxy)
	defer ps.Close()

	alice := newUser(t, ps.URL, "correct horse battery staple")
	alice.ok("signup", "alice")
	alice.ok("mkdir", "/inbox")
	link := strings.TrimSpace(alice.ok("link", "create", "--upload-only", "/inbox"))
	visitor := newUser(t, "", "")
	f := writeFile(t, filepath.Join(t.TempDir(), "secret.txt"), []byte("for alice only"))
	swapKeys.Store(true)
	if r := visitor.fails(exitVerify, "put", f, link); !strings.Contains(r.stderr, "substituted") {
		t.Fatalf("substituted owner keys: %s", r)
	}
	swapKeys.Store(false)

	// Hostile drops, built by hand.
	v := openRawUpload(t, link)
	for _, c := range []struct {
		name string
		mode uint32
		edit func([]byte) []byte
	}{
		{"bad-commitment.txt", 0o644, func(c []byte) []byte { c[40] ^= 1; return c }},
		{"../x", 0o644, nil},
		{"many.txt", 0o644, func(c []byte) []byte { binary.BigEndian.PutUint32(c[108:], 1<<30); return c }},
	} {
		v.sendDrop(t, c.name, c.mode, c.edit)
	}
	v.sendDrop(t, "fine.txt", 0o644, nil)
	r := alice.run("ls", "/inbox")
	if r.code != 0 || r.stdout != "fine.txt\n" {
		t.Fatalf("ls after hostile drops: %s", r)
	}
	for _, want := range []string{"authentication failed", "name: invalid", "content chunks"} {
		if !strings.Contains(r.stderr, "refused an anonymous upload via link") || !strings.Contains(r.stderr, want) {
			t.Fatalf("import warnings lack %q: %s", want, r.stderr)
		}
	}
	if out := alice.ok("cat", "/inbox/fine.txt"); out != "fine" {
		t.Fatalf("cat fine.txt: %q", out)
	}
}

// rawUpload is a hand-made visitor of an upload-only link (FORMAT.md §12.3 byte by byte).
type rawUpload struct {
	base, hexID string
	id          format.LinkID
	token       string
	lk          [32]byte
	owner       *format.PublicKeys
}

func openRawUpload(t *testing.T, link string) *rawUpload {
	t.Helper()
	server, id, secret, err := format.ParseLinkURL(link)
	if err != nil {
		t.Fatal(err)
	}
	v := &rawUpload{base: server, id: id, hexID: hex.EncodeToString(id[:])}
	keys := format.DeriveLinkKeys(secret, nil, format.KDFParams{})
	var ch api.LinkChallengeResponse
	v.post(t, "/challenge", "", nil, &ch)
	sig := ed25519.Sign(keys.Auth, format.LinkAuthMessage(id, [32]byte(ch.Challenge)))
	body, _ := json.Marshal(api.LinkOpenRequest{Challenge: ch.Challenge, Signature: sig})
	var resp api.LinkOpenResponse
	v.post(t, "/open", "application/json", body, &resp)
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

func (v *rawUpload) post(t *testing.T, path, ctype string, body []byte, out any) {
	t.Helper()
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// sendDrop uploads the chunk of a 4-byte file "fine" and a drop naming it; edit alters the
// encoded content description.
func (v *rawUpload) sendDrop(t *testing.T, name string, mode uint32, edit func([]byte) []byte) {
	t.Helper()
	plain := []byte("fine")
	ck := format.NewContentKey()
	var put api.BlobPutResponse
	v.post(t, "/blobs", "application/octet-stream", ck.Cipher().Seal(nil, plain, 0, true), &put)
	commit, hash := ck.Commitment(), sha256.Sum256(plain)
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
	tlv := func(tag byte, val []byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{tag}, uint32(len(val))), val...)
	}
	auth, _ := hkdf.Key(sha256.New, v.lk[:], nil, "coffer/v1 drop auth", 32)
	pt := tlv(1, []byte(name))
	pt = append(pt, tlv(2, make([]byte, 8))...)
	pt = append(pt, tlv(3, binary.BigEndian.AppendUint32(nil, mode))...)
	pt = append(pt, tlv(5, auth)...)
	pt = append(pt, tlv(6, c)...)
	var dropID [16]byte
	rand.Read(dropID[:])
	hdr := append(append(append([]byte("CFD1"), v.id[:]...), dropID[:]...), v.owner.Account[:]...)
	pub, err := hpke.MLKEM768X25519().NewPublicKey(v.owner.KEM)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), append([]byte("coffer/v1 drop\x00"), hdr...), pt)
	if err != nil {
		t.Fatal(err)
	}
	d := append(binary.BigEndian.AppendUint32(hdr, uint32(len(sealed))), sealed...)
	body, _ := json.Marshal(api.DropCreateRequest{Drop: d, Blobs: []coffer.BlobID{put.Blob}})
	v.post(t, "/drops", "application/json", body, nil)
}
