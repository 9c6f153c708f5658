package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"

	"coffer"
)

func TestChunkMath(t *testing.T) {
	const cs = 1 << 16
	cases := []struct {
		size  uint64
		count uint64
		last  uint32
	}{{0, 0, 0}, {1, 1, 1}, {cs - 1, 1, cs - 1}, {cs, 1, cs}, {cs + 1, 2, 1}, {10*cs + 7, 11, 7}, {1 << 40, 1 << 24, cs}}
	for _, c := range cases {
		if n := ChunkCount(c.size, cs); n != c.count {
			t.Errorf("ChunkCount(%d) = %d, want %d", c.size, n, c.count)
		}
		if c.count > 0 {
			if l := ChunkPlainLen(c.size, cs, c.count-1); l != c.last {
				t.Errorf("last chunk of %d = %d, want %d", c.size, l, c.last)
			}
			if c.count > 1 && ChunkPlainLen(c.size, cs, 0) != cs {
				t.Errorf("first chunk of %d not full", c.size)
			}
		}
		if ChunkPlainLen(c.size, cs, c.count) != 0 {
			t.Errorf("chunk past the end of %d not empty", c.size)
		}
	}
	for cs, ok := range map[uint32]bool{1 << 16: true, 1 << 20: true, 1 << 24: true, 1 << 15: false, 1 << 25: false, 3 << 16: false, 0: false} {
		if ValidChunkSize(cs) != ok {
			t.Errorf("ValidChunkSize(%d) != %v", cs, ok)
		}
	}
}

func TestContentCipher(t *testing.T) {
	rng := testRand(20)
	ck := ContentKey(random32(rng))
	c := ck.Cipher()
	chunks := [][]byte{bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("b"), 100), []byte("end")}
	var cts [][]byte
	for i, p := range chunks {
		ct := c.Seal(nil, p, uint64(i), i == len(chunks)-1)
		if len(ct) != len(p)+16 {
			t.Fatal("ciphertext length")
		}
		cts = append(cts, ct)
	}
	for i, ct := range cts {
		final := i == len(cts)-1
		pt, err := c.Open([]byte("prefix"), ct, uint64(i), final)
		if err != nil || !bytes.Equal(pt, append([]byte("prefix"), chunks[i]...)) {
			t.Fatalf("chunk %d: %v", i, err)
		}
		// Wrong final flag (truncation or extension), wrong index (reordering).
		_, err = c.Open(nil, ct, uint64(i), !final)
		wantErr(t, err, coffer.ErrAuth, "chunk")
		_, err = c.Open(nil, ct, uint64(i+1), final)
		wantErr(t, err, coffer.ErrAuth, "chunk")
		for _, m := range mutations(ct) {
			_, err := c.Open(nil, m, uint64(i), final)
			wantErr(t, err, coffer.ErrAuth, "")
		}
	}
	// Chunk from another file version (other content key) at the same position.
	other := ContentKey(random32(rng)).Cipher().Seal(nil, chunks[0], 0, false)
	_, err := c.Open(nil, other, 0, false)
	wantErr(t, err, coffer.ErrAuth, "")
	// A chunk encrypted as final but never the last one cannot be reused as a middle chunk.
	if bytes.Equal(c.Seal(nil, chunks[2], 2, true), c.Seal(nil, chunks[2], 2, false)) {
		t.Fatal("final flag not in nonce")
	}
	if ck.Commitment() == (ContentKey(random32(rng))).Commitment() || ck.Commitment() == [32]byte(ck) {
		t.Fatal("commitment")
	}
	// Concurrent use of one cipher.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				ct := c.Seal(nil, chunks[0], uint64(i*100+j), false)
				if _, err := c.Open(nil, ct, uint64(i*100+j), false); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestBodyTLV(t *testing.T) {
	ck := ContentKey(id32(3))
	full := &Body{Name: "x", MTime: 5, Mode: 0o600, Role: RoleRoot, TrashOrigin: coffer.NodeID(id16(4)), Content: testContent(ck, 70000, 1<<16)}
	pt := marshalBody(full)
	b, err := parseBody(pt, "body")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marshalBody(b), pt) {
		t.Fatal("round trip")
	}
	u32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	name, mtime, mode := appendTLV(nil, 1, []byte("x")), appendTLV(nil, 2, make([]byte, 8)), appendTLV(nil, 3, u32(0o644))
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	content := func(c *Content) []byte {
		return marshalBody(&Body{Name: "x", Content: c})[len(name)+len(mtime)+len(mode):]
	}
	rawContent := func(c *Content, mutate func(v []byte) []byte) []byte {
		v := content(c)[5:]
		v = mutate(bytes.Clone(v))
		return appendTLV(nil, 6, v)
	}
	good := testContent(ck, 70000, 1<<16)
	if _, err := parseBody(cat(name, mtime, mode, content(good)), "body"); err != nil {
		t.Fatal(err)
	}
	badCommit := testContent(ck, 70000, 1<<16)
	badCommit.Commitment[31] ^= 1
	cases := map[string][]byte{
		"not strictly increasing": cat(mtime, name, mode),
		"tlv tag 1":               cat(name, name, mtime, mode),
		"unknown tag":             cat(name, mtime, mode, appendTLV(nil, 10, nil)),
		"mount: length":           cat(name, mtime, mode, appendTLV(nil, 7, nil)),
		"mount: zero":             cat(name, mtime, mode, appendTLV(nil, 7, make([]byte, 16))),
		"previous key: length":    cat(name, mtime, mode, appendTLV(nil, 8, make([]byte, 31))),
		"required tag missing":    cat(name, mode),
		"name":                    cat(appendTLV(nil, 1, []byte("a/b")), mtime, mode),
		"mtime":                   cat(name, appendTLV(nil, 2, make([]byte, 7)), mode),
		"mode":                    cat(name, mtime, appendTLV(nil, 3, make([]byte, 5))),
		"unknown role":            cat(name, mtime, mode, appendTLV(nil, 4, []byte{3})),
		"role: length":            cat(name, mtime, mode, appendTLV(nil, 4, nil)),
		"trash origin":            cat(name, mtime, mode, appendTLV(nil, 5, make([]byte, 16))),
		"chunk size":              cat(name, mtime, mode, rawContent(good, func(v []byte) []byte { v[75] = 1; return v })),
		"content chunks":          cat(name, mtime, mode, rawContent(good, func(v []byte) []byte { return v[:len(v)-44] })),
		"bytes for":               cat(name, mtime, mode, rawContent(good, func(v []byte) []byte { return append(v, 0) })),
		"length 4481":             cat(name, mtime, mode, rawContent(good, func(v []byte) []byte { v[len(v)-1]++; return v })),
		"exceeds remaining":       cat(name, mtime, mode, []byte{6, 0, 0, 1, 0}),
	}
	for want, pt := range cases {
		_, err := parseBody(pt, "body")
		wantErr(t, err, coffer.ErrCorrupt, want)
	}
	_, err = parseBody(cat(name, mtime, mode, content(badCommit)), "body x")
	wantErr(t, err, coffer.ErrAuth, "body x")
}

// TestBlobName: the name is H over the chunks' lengths and tags (§8), so it changes with any tag
// or length and not with the other ciphertext bytes (which is why readers must not rely on it:
// the AEAD protects those); layouts that do not tile the blob are refused.
func TestBlobName(t *testing.T) {
	c := NewContentKey().Cipher()
	var blob []byte
	var lengths []uint32
	for i, p := range []string{"one", "two two", "three three three"} {
		ch := c.Seal(nil, []byte(p), uint64(i), i == 2)
		blob = append(blob, ch...)
		lengths = append(lengths, uint32(len(ch)))
	}
	got, err := BlobName(blob, lengths)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("coffer/v1 blob\x00\x00\x00\x00\x03")
	off := 0
	for _, l := range lengths {
		off += int(l)
		want = binary.BigEndian.AppendUint32(want, l)
		want = append(want, blob[off-16:off]...)
	}
	if got != coffer.BlobID(sha256.Sum256(want)) {
		t.Fatalf("BlobName = %x; want H of %x", got, want)
	}
	if again, _ := BlobName(bytes.Clone(blob), lengths); again != got {
		t.Error("the same chunks got another name")
	}
	tag := bytes.Clone(blob)
	tag[len(tag)-1] ^= 1
	if n, _ := BlobName(tag, lengths); n == got {
		t.Error("a changed tag kept the name")
	}
	body := bytes.Clone(blob)
	body[0] ^= 1
	if n, _ := BlobName(body, lengths); n != got {
		t.Error("a changed non-tag byte changed the name (the rule hashes tags only)")
	}
	moved := []uint32{lengths[0] + 1, lengths[1] - 1, lengths[2]}
	if n, _ := BlobName(blob, moved); n == got {
		t.Error("another chunk layout kept the name")
	}
	for name, l := range map[string][]uint32{
		"short": {lengths[0], lengths[1]}, "long": append(slices.Clone(lengths), 16), "tiny": {15, uint32(len(blob) - 15)},
	} {
		if _, err := BlobName(blob, l); !errors.Is(err, coffer.ErrInvalid) {
			t.Errorf("%s layout: err = %v; want ErrInvalid", name, err)
		}
	}
	if n, err := BlobName(nil, nil); err != nil || n != coffer.BlobID(sha256.Sum256([]byte("coffer/v1 blob\x00\x00\x00\x00\x00"))) {
		t.Errorf("empty blob: %x, %v", n, err)
	}
}
