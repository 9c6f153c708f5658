package hostile

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"coffer/client"
	"coffer/format"
)

// keystreamProbe is how many leading bytes of each chunk the nonce-reuse detector compares.
const keystreamProbe = 64

// nonceReuse looks for two different ciphertexts made with the same (key, nonce): under AES-GCM
// (CTR inside) that means ct1 XOR pt1 == ct2 XOR pt2 on the first bytes. blobs are every blob
// body the client sent, chunkCT the ciphertext length of a full chunk (big files' packs hold
// consecutive chunks from offset 0), versions every plaintext the file ever had. It returns a
// description of each reuse found.
func nonceReuse(blobs [][]byte, chunkCT int, chunkPlain int, versions [][]byte) []string {
	type seen struct {
		ct   []byte
		what string
	}
	ks := map[string]seen{}
	var found []string
	for bi, b := range blobs {
		for off := 0; off+keystreamProbe <= len(b); off += chunkCT {
			ct := b[off : off+keystreamProbe]
			for vi, v := range versions {
				for ci := 0; ci*chunkPlain+keystreamProbe <= len(v); ci++ {
					pt := v[ci*chunkPlain : ci*chunkPlain+keystreamProbe]
					k := make([]byte, keystreamProbe)
					for i := range k {
						k[i] = ct[i] ^ pt[i]
					}
					what := "blob " + itoa(bi) + " offset " + itoa(off) + " as version " + itoa(vi) + " chunk " + itoa(ci)
					if prev, ok := ks[string(k)]; ok && !bytes.Equal(prev.ct, ct) {
						found = append(found, prev.what+" and "+what)
					} else if !ok {
						ks[string(k)] = seen{bytes.Clone(ct), what}
					}
				}
			}
		}
	}
	return found
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestNonceReuseDetector is the positive control: the detector finds a real reuse.
func TestNonceReuseDetector(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	p1, p2 := randBytes(256), randBytes(256)
	c1, c2 := g.Seal(nil, nonce, p1, nil), g.Seal(nil, nonce, p2, nil)
	if got := nonceReuse([][]byte{c1, c2}, len(c1), 256, [][]byte{p1, p2}); len(got) == 0 {
		t.Fatal("detector misses a reuse")
	}
	c3 := g.Seal(nil, []byte("other nonce!"), p2, nil)
	if got := nonceReuse([][]byte{c1, c3}, len(c1), 256, [][]byte{p1, p2}); len(got) != 0 {
		t.Fatalf("false positive: %v", got)
	}
	// With the real content cipher: same key and index, two plaintexts.
	ck := format.NewContentKey()
	x, y := ck.Cipher().Seal(nil, p1, 3, false), ck.Cipher().Seal(nil, p2, 3, false)
	if got := nonceReuse([][]byte{x, y}, len(x), 256, [][]byte{p1, p2}); len(got) == 0 {
		t.Fatal("detector misses a content-cipher reuse")
	}
}

func TestScenario20_NoNonceReuseAcrossRetries(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "victim")
	env := f.env
	ctx := context.Background()
	rec := newRecorder()
	cfg := env.Config(f.state)
	cfg.HTTPClient = rec.client()
	c, err := client.Login(ctx, cfg, f.user, []byte("correct horse battery victim"), "r")
	if err != nil {
		t.Fatal(err)
	}
	other := f.login(t, t.TempDir()) // makes real 409s by committing concurrently
	src := filepath.Join(t.TempDir(), "big")
	size := 9*chunk + 3 // 10 chunks: packs of 4, 4, 2
	v := randBytes(size)
	versions := [][]byte{bytes.Clone(v)}
	writeFile(t, src, v)
	edit := func(chunks ...int) {
		v = bytes.Clone(v)
		for _, i := range chunks {
			copy(v[i*chunk:], randBytes(100))
		}
		versions = append(versions, bytes.Clone(v))
		writeFile(t, src, v)
	}
	isBlobPost := func(m, p string) bool { return m == "PUT" && strings.Contains(p, "/blobs/") }
	isCommit := func(m, p string) bool { return m == "POST" && strings.HasSuffix(p, "/commit") }

	// Attempt 1: killed (context cancelled) at the second pack.
	c1ctx, cancel := context.WithCancel(ctx)
	var once sync.Once
	posts := 0
	rec.setFault(func(m, p string, n int) string {
		if isBlobPost(m, p) {
			posts++
			if posts == 2 {
				once.Do(cancel)
				return "drop"
			}
		}
		return ""
	})
	if _, err := c.Upload(c1ctx, []string{src}, "/", client.TransferOptions{}); err == nil {
		t.Fatal("attempt 1 succeeded")
	}
	// Attempt 2: content changed inside the acknowledged pack and after it; blob answers lost
	// (the server stored them, the client retries) and the commit's answer lost too.
	edit(1, 6)
	lost := map[string]bool{}
	rec.setFault(func(m, p string, n int) string {
		if (isBlobPost(m, p) || isCommit(m, p)) && !lost[m+p] {
			lost[m+p] = true
			return "lose"
		}
		return ""
	})
	_, err = c.Upload(ctx, []string{src}, "/", client.TransferOptions{})
	t.Logf("attempt 2 (answers lost): %v", err)
	// Attempt 3: changed again, and a concurrent commit forces a real 409 on the first commit.
	edit(0, 9)
	forced := false
	rec.setFault(func(m, p string, n int) string {
		if isCommit(m, p) && !forced {
			forced = true
			if _, err := other.Mkdir(ctx, "/concurrent", true); err != nil {
				t.Errorf("concurrent mkdir: %v", err)
			}
		}
		return ""
	})
	if _, err := c.Upload(ctx, []string{src}, "/", client.TransferOptions{Overwrite: true}); err != nil {
		t.Fatalf("attempt 3: %v", err)
	}
	// Attempt 4: killed again mid-way, then resumed with the same content (key reuse with the
	// same plaintext is allowed: identical ciphertext), then changed and uploaded.
	edit(2)
	c4ctx, cancel4 := context.WithCancel(ctx)
	posts = 0
	var once4 sync.Once
	rec.setFault(func(m, p string, n int) string {
		if isBlobPost(m, p) {
			posts++
			if posts == 2 {
				once4.Do(cancel4)
				return "drop"
			}
		}
		return ""
	})
	c.Upload(c4ctx, []string{src}, "/", client.TransferOptions{Overwrite: true})
	rec.setFault(nil)
	if _, err := c.Upload(ctx, []string{src}, "/", client.TransferOptions{Overwrite: true}); err != nil {
		t.Fatalf("attempt 4 resumed: %v", err)
	}

	var blobs [][]byte
	for _, r := range rec.requests() {
		if isBlobPost(r.Method, r.Path) && len(r.Body) > 0 {
			blobs = append(blobs, r.Body)
		}
	}
	if len(blobs) < 6 {
		t.Fatalf("only %d blob uploads recorded", len(blobs))
	}
	// The detector looks at chunk-aligned offsets of each pack: check that assumption on the
	// committed version.
	final := captureSecrets(t, env, f.user).lookup(t, env, "/big").body.Content
	for i, r := range final.Chunks {
		if r.Offset%(chunk+16) != 0 {
			t.Fatalf("chunk %d at offset %d: packs are not chunk-aligned, the detector would miss chunks", i, r.Offset)
		}
	}
	if found := nonceReuse(blobs, chunk+16, chunk, versions); len(found) > 0 {
		t.Fatalf("(content key, chunk index) reused for different plaintexts: %d cases, e.g. %s", len(found), found[0])
	}
	// The file is exactly the last version, once.
	var out bytes.Buffer
	if err := c.Cat(ctx, "/big", &out); err != nil || !bytes.Equal(out.Bytes(), v) {
		t.Fatalf("final content: %v (%d bytes)", err, out.Len())
	}
	es, err := c.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
	}
	if n := strings.Count(strings.Join(names, "\n"), "big"); n != 1 {
		t.Errorf("top level after retries: %v", names)
	}
	os.Remove(src)
}
