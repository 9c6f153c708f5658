package hostile

// Scenarios 9-17 of doc/SECURITY.md: file content (chunks, blobs, wrapped keys).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// contentFixture is a fixture plus the decrypted content descriptions of /d/a and /d/b.
type contentFixture struct {
	*fixture
	s    *secrets
	a, b *format.Content
}

func newContentFixture(t *testing.T) *contentFixture {
	f := newFixture(t, "victim")
	s := captureSecrets(t, f.env, "victim")
	cf := &contentFixture{fixture: f, s: s,
		a: s.lookup(t, f.env, "/d/a").body.Content, b: s.lookup(t, f.env, "/d/b").body.Content}
	if len(cf.a.Chunks) != 3 || len(cf.b.Chunks) != 3 {
		t.Fatalf("fixture: %d and %d chunks, want 3", len(cf.a.Chunks), len(cf.b.Chunks))
	}
	return cf
}

// span returns the stored bytes of chunk ref r.
func span(b []byte, r format.ChunkRef) []byte { return b[r.Offset : r.Offset+uint64(r.Length)] }

// attackBlob checks that /d/a is refused (class; nil: any refusal class) both through the proxy
// edit and, when onDisk, with the same edit applied to the stored blob file.
func (cf *contentFixture) attackBlob(t *testing.T, class error, onDisk bool, edit func(id coffer.BlobID, b []byte) []byte) {
	t.Helper()
	id := cf.a.Chunks[0].Blob
	cf.env.SetHook(blobEdit(cf.env, id, edit))
	expectDownloadRefused(t, cf.c, "/d/a", class)
	var out bytes.Buffer
	if err := cf.c.Cat(context.Background(), "/d/a", &out); err == nil {
		t.Fatalf("cat accepted %d bytes", out.Len())
	}
	cf.env.SetHook(nil)
	if !onDisk {
		return
	}
	p := cf.env.BlobPath(id)
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, edit(id, bytes.Clone(orig)), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(p, orig, 0o600)
	err = expectDownloadRefusedAny(t, cf.c, "/d/a")
	if class != nil && !errors.Is(err, class) && !errors.Is(err, coffer.ErrUnavailable) && !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("stored blob edited: %v", err)
	}
}

// expectDownloadRefusedAny is expectDownloadRefused accepting any error (a server that notices
// its own stored damage may answer 5xx or 404 instead of serving it).
func expectDownloadRefusedAny(t testing.TB, c *client.Client, remote string) error {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, "target")
	writeFile(t, dst, []byte("keep me"))
	_, err := c.Download(context.Background(), []string{remote}, dst, client.TransferOptions{Overwrite: true})
	if err == nil {
		t.Fatalf("download %s: accepted", remote)
	}
	if !namesPath(err, remote) {
		t.Errorf("download %s: error does not name the path: %v", remote, err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "keep me" {
		t.Fatalf("download %s: target overwritten", remote)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("download %s: %d entries beside the target", remote, len(ents))
	}
	return err
}

func TestScenario09_ChunkSwap(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	for _, pair := range [][2]int{{0, 1}, {1, 0}} {
		cf.attackBlob(t, coffer.ErrAuth, true, func(_ coffer.BlobID, x []byte) []byte {
			p := bytes.Clone(span(x, cf.a.Chunks[pair[0]]))
			q := bytes.Clone(span(x, cf.a.Chunks[pair[1]]))
			copy(x[cf.a.Chunks[pair[0]].Offset:], q)
			copy(x[cf.a.Chunks[pair[1]].Offset:], p)
			return x
		})
	}
}

func TestScenario10_TruncationAtChunkBoundary(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	last := cf.a.Chunks[2]
	// The blob ends where the final chunk starts (the two full chunks still verify).
	cf.attackBlob(t, nil, false, func(_ coffer.BlobID, x []byte) []byte { return x[:last.Offset] })
	// The final chunk replaced by the (non-final) first chunk: the sizes differ, so also try
	// moving the file's final flag: serve chunk 1's bytes as the final chunk's prefix.
	cf.attackBlob(t, coffer.ErrAuth, true, func(_ coffer.BlobID, x []byte) []byte {
		copy(x[last.Offset:], span(x, cf.a.Chunks[1])[:last.Length])
		return x
	})
	// Stored file truncated on disk.
	p := cf.env.BlobPath(last.Blob)
	orig, _ := os.ReadFile(p)
	os.WriteFile(p, orig[:last.Offset], 0o600)
	expectDownloadRefusedAny(t, cf.c, "/d/a")
	os.WriteFile(p, orig, 0o600)
}

func TestScenario11_Extension(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	ctx := context.Background()
	// An extra chunk after the final one (a copy of chunk 0) and garbage after it: never read,
	// never returned. The client must return exactly the file (or refuse), never more.
	cf.env.SetHook(blobEdit(cf.env, cf.a.Chunks[0].Blob, func(_ coffer.BlobID, x []byte) []byte {
		return append(x, append(bytes.Clone(span(x, cf.a.Chunks[0])), randBytes(100)...)...)
	}))
	defer cf.env.SetHook(nil)
	dst := filepath.Join(t.TempDir(), "a")
	if _, err := cf.c.Download(ctx, []string{"/d/a"}, dst, client.TransferOptions{}); err != nil {
		if !isRefusal(err) {
			t.Fatalf("extended blob: %v", err)
		}
	} else if got, _ := os.ReadFile(dst); !bytes.Equal(got, cf.contents["/d/a"]) {
		t.Fatalf("extended blob: got %d bytes, want exactly the %d of the file", len(got), len(cf.contents["/d/a"]))
	}
	// A ranged answer carrying more bytes than asked (the next chunk's start appended).
	cf.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if !isBlobGet(req, resp) {
			return nil
		}
		b, _ := testenv.ReadBody(resp)
		testenv.ReplaceBody(resp, append(b, randBytes(32)...))
		return nil
	})
	dst2 := filepath.Join(t.TempDir(), "a")
	if _, err := cf.c.Download(ctx, []string{"/d/a"}, dst2, client.TransferOptions{}); err != nil {
		if _, serr := os.Stat(dst2); serr == nil {
			t.Fatalf("failed download left %s", dst2)
		}
	} else if got, _ := os.ReadFile(dst2); !bytes.Equal(got, cf.contents["/d/a"]) {
		t.Fatalf("over-long ranges: got %d bytes, want the file", len(got))
	}
}

func TestScenario12_BitFlip(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	// In the last chunk: chunks 0 and 1 verify and are written to the partial file first; none
	// of it may reach the target.
	for _, pos := range []uint64{cf.a.Chunks[2].Offset + 3, cf.a.Chunks[0].Offset, cf.a.Chunks[1].Offset + uint64(cf.a.Chunks[1].Length) - 1} {
		cf.attackBlob(t, coffer.ErrAuth, true, func(_ coffer.BlobID, x []byte) []byte { x[pos] ^= 0x08; return x })
	}
	// A new target (not pre-existing) must not appear either.
	cf.env.SetHook(blobEdit(cf.env, cf.a.Chunks[0].Blob, func(_ coffer.BlobID, x []byte) []byte {
		x[cf.a.Chunks[2].Offset+5] ^= 1
		return x
	}))
	defer cf.env.SetHook(nil)
	dir := t.TempDir()
	if _, err := cf.c.Download(context.Background(), []string{"/d"}, filepath.Join(dir, "out"), client.TransferOptions{}); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("download /d: %v", err)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, cf.contents["/d/a"][:4096]) {
				t.Errorf("plaintext of /d/a left in %s", p)
			}
		}
		return nil
	})
}

func TestScenario13_ChunkOfAnotherFile(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	bBlob := readBlob(t, cf.env, cf.b.Chunks[0].Blob)
	for i := 0; i < 2; i++ { // full chunks have equal lengths
		cf.attackBlob(t, coffer.ErrAuth, true, func(_ coffer.BlobID, x []byte) []byte {
			copy(x[cf.a.Chunks[i].Offset:], span(bBlob, cf.b.Chunks[i]))
			return x
		})
	}
}

func TestScenario14_WholeBlobOfAnotherFile(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	// A file of the same size uploaded on its own, so it has its own blob.
	src := filepath.Join(t.TempDir(), "z")
	writeFile(t, src, randBytes(len(cf.contents["/d/a"])))
	if _, err := cf.c.Upload(context.Background(), []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	z := cf.s.lookup(t, cf.env, "/z").body.Content
	if z.Chunks[0].Blob == cf.a.Chunks[0].Blob {
		t.Fatal("fixture: /z shares /d/a's blob")
	}
	zBlob := readBlob(t, cf.env, z.Chunks[0].Blob)
	cf.attackBlob(t, nil, true, func(_ coffer.BlobID, x []byte) []byte { return bytes.Clone(zBlob) })
	// z's blob padded to a's blob's length, so every range is satisfiable.
	cf.attackBlob(t, coffer.ErrAuth, true, func(_ coffer.BlobID, x []byte) []byte {
		y := append(bytes.Clone(zBlob), make([]byte, len(x))...)
		return y[:len(x)]
	})
}

func TestScenario15_OlderBlobForCurrentMetadata(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	ctx := context.Background()
	v1 := readBlob(t, cf.env, cf.a.Chunks[0].Blob)
	src := filepath.Join(t.TempDir(), "a")
	v2 := randBytes(len(cf.contents["/d/a"]))
	writeFile(t, src, v2)
	if _, err := cf.c.Upload(ctx, []string{src}, "/d/a", client.TransferOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	a2 := cf.s.lookup(t, cf.env, "/d/a").body.Content
	if a2.Chunks[0].Blob == cf.a.Chunks[0].Blob {
		t.Fatal("new version reuses the old blob")
	}
	vs, err := cf.c.Versions(ctx, "/d/a")
	if err != nil || len(vs) < 2 {
		t.Fatalf("versions: %v %v", vs, err)
	}
	cf.env.SetHook(blobEdit(cf.env, a2.Chunks[0].Blob, func(_ coffer.BlobID, x []byte) []byte {
		y := append(bytes.Clone(v1), make([]byte, len(x))...)
		return y[:len(x)]
	}))
	expectDownloadRefused(t, cf.c, "/d/a", coffer.ErrAuth)
	// On disk: the old version's file under the new blob's name.
	cf.env.SetHook(nil)
	p := cf.env.BlobPath(a2.Chunks[0].Blob)
	orig, _ := os.ReadFile(p)
	os.WriteFile(p, v1, 0o600)
	expectDownloadRefusedAny(t, cf.c, "/d/a")
	os.WriteFile(p, orig, 0o600)
	var out bytes.Buffer
	if err := cf.c.Cat(ctx, "/d/a", &out); err != nil || !bytes.Equal(out.Bytes(), v2) {
		t.Fatalf("honest read after restore: %v", err)
	}
}

func TestScenario16_EmptyOrMissingBlob(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	id := cf.a.Chunks[0].Blob
	// Empty body with 200.
	cf.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if isBlobGet(req, resp) {
			testenv.ReadBody(resp)
			resp.StatusCode, resp.Status = 200, "200 OK"
			resp.Header.Del("Content-Range")
			testenv.ReplaceBody(resp, nil)
		}
		return nil
	})
	expectDownloadRefusedAny(t, cf.c, "/d/a")
	// 404 from the server (it "lost" the blob).
	cf.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if isBlobGet(req, resp) {
			testenv.ReadBody(resp)
			resp.StatusCode, resp.Status = 404, "404 Not Found"
			resp.Header.Del("Content-Range")
			testenv.ReplaceBody(resp, []byte(`{"code":"not_found","message":"no such blob"}`))
		}
		return nil
	})
	err := expectDownloadRefusedAny(t, cf.c, "/d/a")
	if !errors.Is(err, coffer.ErrNotFound) && !isRefusal(err) {
		t.Errorf("missing blob: %v", err)
	}
	cf.env.SetHook(nil)
	// Stored blob file deleted, and its row too.
	p := cf.env.BlobPath(id)
	orig, _ := os.ReadFile(p)
	os.Remove(p)
	expectDownloadRefusedAny(t, cf.c, "/d/a")
	os.WriteFile(p, orig, 0o600)
	os.WriteFile(p, nil, 0o600)
	expectDownloadRefusedAny(t, cf.c, "/d/a")
	os.WriteFile(p, orig, 0o600)
	// An empty file really is empty and downloads (control).
	src := filepath.Join(t.TempDir(), "empty")
	writeFile(t, src, nil)
	if _, err := cf.c.Upload(context.Background(), []string{src}, "/d/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "e")
	if _, err := cf.c.Download(context.Background(), []string{"/d/empty"}, dst, client.TransferOptions{}); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestScenario17_WrappedKeyReplaced(t *testing.T) {
	t.Parallel()
	cf := newContentFixture(t)
	ra := cf.s.lookup(t, cf.env, "/d/a")
	rb := cf.s.lookup(t, cf.env, "/d/b")
	const off, n = format.RecordHeaderLen, 60
	wraps := map[string][]byte{
		"random":          randBytes(n),
		"all zero":        make([]byte, n),
		"b's wrapped key": bytes.Clone(rb.raw[off : off+n]),
		"one bit flipped": func() []byte { w := bytes.Clone(ra.raw[off : off+n]); w[20] ^= 1; return w }(),
	}
	dID := cf.s.lookup(t, cf.env, "/d").rec.Node.String()
	for name, w := range wraps {
		t.Run(name, func(t *testing.T) {
			forged := bytes.Clone(ra.raw)
			copy(forged[off:], w)
			// Through the proxy: the listing of /d carries the forged record.
			c := cf.login(t, cf.state)
			cf.env.SetHook(func(req *http.Request, resp *http.Response) error {
				if !isListing(req, resp) || folderOf(req) != dID {
					return nil
				}
				b, _ := testenv.ReadBody(resp)
				fs, _ := splitFrames(b)
				for i := range fs {
					if fs[i].typ == api.FrameRecord && bytes.Equal(fs[i].b, ra.raw) {
						fs[i].b = forged
					}
				}
				testenv.ReplaceBody(resp, joinFrames(fs))
				return nil
			})
			expectListRefused(t, c, "/d", coffer.ErrAuth)
			expectDownloadRefused(t, c, "/d/a", coffer.ErrAuth)
			cf.env.SetHook(nil)
			if name != "random" {
				return // the store variant once is enough (its refusals retry for seconds)
			}
			// In the store, with the hash column fixed up so the server serves it.
			db := cf.env.DB(t)
			h := sha256.Sum256(forged)
			if _, err := db.Exec("UPDATE nodes SET record = ?, hash = ? WHERE node = ?", forged, h[:], ra.rec.Node[:]); err != nil {
				t.Fatal(err)
			}
			orig := sha256.Sum256(ra.raw)
			defer db.Exec("UPDATE nodes SET record = ?, hash = ? WHERE node = ?", ra.raw, orig[:], ra.rec.Node[:])
			c2 := cf.login(t, t.TempDir())
			expectListFails(t, c2, "/d")
			expectDownloadRefusedAny(t, c2, "/d/a")
		})
	}
}

// TestUploadVerifiesBlobID: a server (malicious or buggy) that answers a blob upload with the ID
// of another blob, or another size, must not make the client commit a record pointing at the
// wrong bytes (an acknowledged upload that is unreadable later). The client names every pack by
// its SHA-256 and refuses any other answer: the upload fails with ErrCorrupt naming the blob, and
// nothing is committed.
func TestUploadVerifiesBlobID(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "victim")
	ctx := context.Background()
	other := f.blobIDs(t)[0]
	src := filepath.Join(t.TempDir(), "n")
	writeFile(t, src, randBytes(5000))
	for _, lie := range []struct {
		name string
		edit func(r *api.BlobPutResponse)
		want string // in the error
	}{
		{"another blob", func(r *api.BlobPutResponse) { r.Blob = other }, other.String()},
		{"another size", func(r *api.BlobPutResponse) { r.Size-- }, "acknowledged"},
	} {
		f.env.SetHook(func(req *http.Request, resp *http.Response) error {
			if req.Method == "PUT" && strings.Contains(req.URL.Path, "/blobs/") && resp.StatusCode == 200 {
				b, _ := testenv.ReadBody(resp)
				var r api.BlobPutResponse
				if err := json.Unmarshal(b, &r); err != nil {
					t.Errorf("blob put answer: %v", err)
				}
				lie.edit(&r)
				nb, _ := json.Marshal(r)
				testenv.ReplaceBody(resp, nb)
			}
			return nil
		})
		_, err := f.c.Upload(ctx, []string{src}, "/", client.TransferOptions{})
		f.env.SetHook(nil)
		if err == nil {
			_, derr := f.c.Download(ctx, []string{"/n"}, filepath.Join(t.TempDir(), "n"), client.TransferOptions{})
			t.Fatalf("%s: upload acknowledged with a wrong answer; download then says: %v", lie.name, derr)
		}
		if !errors.Is(err, coffer.ErrCorrupt) || !strings.Contains(err.Error(), lie.want) {
			t.Fatalf("%s: %v, want ErrCorrupt naming %s", lie.name, err, lie.want)
		}
		if _, err := f.c.Stat(ctx, "/n"); !errors.Is(err, coffer.ErrNotFound) {
			t.Fatalf("%s: refused upload left a record: %v", lie.name, err)
		}
	}
	// The same upload against an honest answer succeeds.
	if _, err := f.c.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatalf("upload after the refusal: %v", err)
	}
}
