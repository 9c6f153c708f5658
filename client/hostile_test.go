package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
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
	"coffer/internal/testenv"
)

type frame struct {
	typ byte
	b   []byte
}

func splitFrames(t testing.TB, b []byte) []frame {
	var out []frame
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("test: bad listing")
		}
		n := binary.BigEndian.Uint32(b[1:5])
		out = append(out, frame{b[0], bytes.Clone(b[5 : 5+n])})
		b = b[5+n:]
	}
	return out
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

// hostileSetup uploads two files into /d and returns a fresh client (no cached listings).
func hostileSetup(t *testing.T) (*testenv.Env, *client.Client, string) {
	ctx := context.Background()
	env := testenv.New(t)
	state := t.TempDir()
	c := env.ClientWith(t, env.Config(state), "victim")
	src := filepath.Join(t.TempDir(), "d")
	writeFile(t, filepath.Join(src, "a"), randBytes(2<<20+5))
	writeFile(t, filepath.Join(src, "b"), randBytes(2<<20+5))
	if _, err := c.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	c2, err := client.Login(ctx, env.Config(state), "victim", testenv.Password("victim"), "x")
	if err != nil {
		t.Fatal(err)
	}
	return env, c2, state
}

// expectRefused checks a listing-level attack: List fails with class, Download writes nothing.
func expectRefused(t *testing.T, c *client.Client, class error) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.List(ctx, "/d"); !errors.Is(err, class) {
		t.Fatalf("list: %v, want %v", err, class)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := c.Download(ctx, []string{"/d"}, dst, client.TransferOptions{}); !errors.Is(err, class) {
		t.Fatalf("download: %v, want %v", err, class)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("download wrote %s", dst)
	}
}

func TestHostileListing(t *testing.T) {
	edits := map[string]func(fs []frame) []frame{
		"dropped entry": func(fs []frame) []frame {
			return append(fs[:3:3], fs[4:]...)
		},
		"injected entry": func(fs []frame) []frame {
			out := append(fs[:4:4], fs[3])
			return append(out, fs[4:]...)
		},
		"swapped order": func(fs []frame) []frame {
			fs[3], fs[4] = fs[4], fs[3]
			return fs
		},
		"flipped record bit": func(fs []frame) []frame {
			fs[3].b[len(fs[3].b)-70] ^= 1
			return fs
		},
		"truncated": func(fs []frame) []frame { return fs[:len(fs)-1] },
		"bucket edited": func(fs []frame) []frame {
			fs[2].b[20] ^= 1
			return fs
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			env, c, _ := hostileSetup(t)
			env.SetHook(func(req *http.Request, resp *http.Response) error {
				if !isListing(req, resp) {
					return nil
				}
				b, _ := testenv.ReadBody(resp)
				fs := splitFrames(t, b)
				if len(fs) != 6 { // head, buckets, bucket, 2 records, end: only /d
					return nil
				}
				testenv.ReplaceBody(resp, joinFrames(edit(fs)))
				return nil
			})
			class := coffer.ErrAuth
			if name == "truncated" {
				class = coffer.ErrCorrupt
			}
			expectRefused(t, c, class)
		})
	}
}

func TestStoredRowTampering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("moved record", func(t *testing.T) {
		env, c, _ := hostileSetup(t)
		if _, err := c.Mkdir(ctx, "/other", false); err != nil {
			t.Fatal(err)
		}
		a, _ := c.Stat(ctx, "/d/a")
		o, _ := c.Stat(ctx, "/other")
		db := env.DB(t)
		if _, err := db.Exec("UPDATE nodes SET parent = ? WHERE node = ?", o.ID[:], a.ID[:]); err != nil {
			t.Fatal(err)
		}
		// The server recomputes folder roots as it streams and refuses to serve the damaged
		// folders; the client must not accept anything either way.
		c2, err := client.Login(ctx, env.Config(t.TempDir()), "victim", testenv.Password("victim"), "x")
		if err != nil {
			t.Fatal(err)
		}
		if es, err := c2.List(ctx, "/other"); err == nil {
			t.Fatalf("list /other: %v", names(es))
		}
		dst := filepath.Join(t.TempDir(), "out")
		if _, err := c2.Download(ctx, []string{"/d"}, dst, client.TransferOptions{}); err == nil {
			t.Fatal("download succeeded")
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Fatalf("download wrote %s", dst)
		}
	})
	t.Run("swapped records", func(t *testing.T) {
		env, c, _ := hostileSetup(t)
		a, _ := c.Stat(ctx, "/d/a")
		b, _ := c.Stat(ctx, "/d/b")
		db := env.DB(t)
		var ra, rb []byte
		db.QueryRow("SELECT record FROM nodes WHERE node = ?", a.ID[:]).Scan(&ra)
		db.QueryRow("SELECT record FROM nodes WHERE node = ?", b.ID[:]).Scan(&rb)
		if _, err := db.Exec("UPDATE nodes SET record = ? WHERE node = ?", rb, a.ID[:]); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("UPDATE nodes SET record = ? WHERE node = ?", ra, b.ID[:]); err != nil {
			t.Fatal(err)
		}
		// The client that listed /d before keeps its verified copy; a fresh one must refuse.
		c2, err := client.Login(ctx, env.Config(t.TempDir()), "victim", testenv.Password("victim"), "x")
		if err != nil {
			t.Fatal(err)
		}
		expectRefused(t, c2, coffer.ErrAuth)
	})
}

func TestRollbackRefused(t *testing.T) {
	ctx := context.Background()
	env, c, _ := hostileSetup(t)
	var mu sync.Mutex
	old := map[string][]byte{}
	record := true
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if !isListing(req, resp) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if record {
			old[req.URL.Path], _ = testenv.ReadBody(resp)
		} else if b, ok := old[req.URL.Path]; ok {
			testenv.ReplaceBody(resp, b)
		}
		return nil
	})
	if _, err := c.List(ctx, "/d"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	record = false
	mu.Unlock()
	env.SetHook(nil)
	if _, err := c.Mkdir(ctx, "/newer", false); err != nil {
		t.Fatal(err)
	}
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if !isListing(req, resp) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if b, ok := old[req.URL.Path]; ok {
			testenv.ReplaceBody(resp, b)
		}
		return nil
	})
	if _, err := c.List(ctx, "/d"); !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("replayed head: %v", err)
	}
	// Also after a restart of the client: the state directory remembers.
	c2, err := client.Login(ctx, env.Config(t.TempDir()), "victim", testenv.Password("victim"), "x")
	if err != nil {
		t.Fatal(err)
	}
	_ = c2 // a fresh device has never seen the newer head: it cannot tell.
}

// blobHook rewrites blob downloads.
func blobHook(edit func(b []byte) []byte) testenv.Hook {
	return func(req *http.Request, resp *http.Response) error {
		if !isBlobGet(req, resp) {
			return nil
		}
		b, _ := testenv.ReadBody(resp)
		testenv.ReplaceBody(resp, edit(b))
		return nil
	}
}

func TestHostileContent(t *testing.T) {
	ctx := context.Background()
	var otherBlob []byte
	cases := map[string]testenv.Hook{
		"flipped bit": blobHook(func(b []byte) []byte { b[len(b)/2] ^= 1; return b }),
		"truncated":   blobHook(func(b []byte) []byte { return b[:len(b)-1] }),
		"shifted":     blobHook(func(b []byte) []byte { return append([]byte{0}, b[:len(b)-1]...) }),
		"other file's blob": blobHook(func(b []byte) []byte {
			if len(otherBlob) >= len(b) {
				return bytes.Clone(otherBlob[:len(b)])
			}
			return b
		}),
	}
	for name, hook := range cases {
		t.Run(name, func(t *testing.T) {
			env, c, _ := hostileSetup(t)
			// Capture b's blob bytes for the substitution case.
			env.SetHook(blobHook(func(b []byte) []byte { otherBlob = bytes.Clone(b); return b }))
			if err := c.Cat(ctx, "/d/b", new(bytes.Buffer)); err != nil {
				t.Fatal(err)
			}
			env.SetHook(hook)
			dst := filepath.Join(t.TempDir(), "a")
			writeFile(t, dst, []byte("keep me"))
			_, err := c.Download(ctx, []string{"/d/a"}, dst, client.TransferOptions{Overwrite: true})
			if !errors.Is(err, coffer.ErrAuth) || !strings.Contains(err.Error(), "/d/a") {
				t.Fatalf("download: %v", err)
			}
			if b, _ := os.ReadFile(dst); string(b) != "keep me" {
				t.Fatal("destination touched")
			}
			ents, _ := os.ReadDir(filepath.Dir(dst))
			if len(ents) != 1 {
				t.Fatalf("leftovers: %v", ents)
			}
			var out bytes.Buffer
			if err := c.Cat(ctx, "/d/a", &out); !errors.Is(err, coffer.ErrAuth) {
				t.Fatalf("cat: %v", err)
			}
		})
	}
}

func TestUnsafeNamesRefused(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "frank")
	src := filepath.Join(t.TempDir(), "tree")
	writeFile(t, filepath.Join(src, "ok.txt"), []byte("fine"))
	writeFile(t, filepath.Join(src, `a\b`), []byte("backslash"))
	if _, err := c.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"CON", "lpt1.txt", "dot.", "nul .txt"} {
		if _, err := c.Mkdir(ctx, "/x/"+name, true); err != nil {
			t.Fatal(err)
		}
	}
	for _, remote := range []string{"/tree", "/x/CON", "/x/lpt1.txt", "/x/dot.", "/x/nul .txt"} {
		dst := t.TempDir()
		_, err := c.Download(ctx, []string{remote}, dst, client.TransferOptions{})
		if !errors.Is(err, client.ErrUnsafeName) || !errors.Is(err, coffer.ErrInvalid) {
			t.Fatalf("%s: %v", remote, err)
		}
		if ents, _ := os.ReadDir(dst); len(ents) != 0 {
			t.Fatalf("%s: wrote %v", remote, ents)
		}
	}
}

func TestEmptyTrashMakesBlobsCollectable(t *testing.T) {
	ctx := context.Background()
	env, c, _ := hostileSetup(t)
	if err := c.Remove(ctx, "/d"); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trash(ctx)
	if err != nil || len(tr) != 1 || tr[0].Path != "/d" {
		t.Fatalf("trash: %+v %v", tr, err)
	}
	n, err := c.EmptyTrash(ctx)
	if err != nil || n != 3 {
		t.Fatalf("empty trash: %d %v", n, err)
	}
	blobs, err := env.Meta.CollectableBlobs(ctx, farFuture(), 100)
	if err != nil || len(blobs) == 0 {
		t.Fatalf("collectable blobs: %d %v", len(blobs), err)
	}
	_ = format.DefaultChunkSize
	_ = api.Prefix
}

func farFuture() time.Time { return time.Now().Add(24 * time.Hour) }

// A bad chunk late in a big file: the partial file written so far is deleted, the destination
// is untouched, and Cat stops after the verified prefix.
func TestHostileBigFileLateChunk(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "nina")
	src := filepath.Join(t.TempDir(), "big")
	data := randBytes(10<<20 + 17)
	writeFile(t, src, data)
	if _, err := c.Upload(ctx, []string{src}, "/big", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	gets := 0
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if !isBlobGet(req, resp) || !strings.Contains(req.Header.Get("Range"), "bytes=0-") {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		gets++
		b, _ := testenv.ReadBody(resp)
		if len(b) < 4<<20 { // the last pack (2 chunks of the tail)
			b[len(b)-1] ^= 1
		}
		testenv.ReplaceBody(resp, b)
		return nil
	})
	dir := t.TempDir()
	dst := filepath.Join(dir, "big")
	writeFile(t, dst, []byte("old"))
	_, err := c.Download(ctx, []string{"/big"}, dst, client.TransferOptions{Overwrite: true})
	if !errors.Is(err, coffer.ErrAuth) || !strings.Contains(err.Error(), "/big") {
		t.Fatalf("download: %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Fatal("destination touched")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("leftovers after a verification failure: %v", ents)
	}
	var out bytes.Buffer
	if err := c.Cat(ctx, "/big", &out); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("cat: %v", err)
	}
	if out.Len() != 8<<20 || !bytes.Equal(out.Bytes(), data[:8<<20]) {
		t.Fatalf("cat wrote %d bytes before failing, want the 8 MiB verified prefix", out.Len())
	}
}
