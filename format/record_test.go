package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"coffer"
)

// testContent builds a valid content description of size bytes.
func testContent(ck ContentKey, size uint64, chunkSize uint32) *Content {
	c := &Content{Key: ck, Commitment: ck.Commitment(), Size: size, ChunkSize: chunkSize, Hash: id32(0xcc)}
	for i := range ChunkCount(size, chunkSize) {
		c.Chunks = append(c.Chunks, ChunkRef{Blob: coffer.BlobID(id32(byte(i))), Offset: i * 100, Length: ChunkPlainLen(size, chunkSize, i) + 16})
	}
	return c
}

type recordFixture struct {
	tk     TreeKey
	folder NodeKey
	file   NodeKey
	fr     *Record // top-level folder, role root
	fl     *Record // file inside it
}

func newRecordFixture(t *testing.T) *recordFixture {
	t.Helper()
	rng := testRand(10)
	f := &recordFixture{tk: random32(rng), folder: random32(rng), file: random32(rng)}
	signer := testSigner(1)
	var err error
	f.fr, err = sealRecord(rng, KindFolder, coffer.NodeID(id16(1)), coffer.NodeID{}, 1, [32]byte{}, f.folder, f.tk.WrapKey(),
		&Body{Name: "root", MTime: 1700000000e9, Mode: 0o755, Role: RoleRoot}, signer)
	if err != nil {
		t.Fatal(err)
	}
	f.fl, err = sealRecord(rng, KindFile, coffer.NodeID(id16(2)), coffer.NodeID(id16(1)), 1, [32]byte{}, f.file, f.folder.WrapKey(),
		&Body{Name: "report.pdf", MTime: -5, Mode: 0o644, Content: testContent(random32(rng), 3<<20+5, DefaultChunkSize)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRecordRoundTrip(t *testing.T) {
	f := newRecordFixture(t)
	for _, tc := range []struct {
		r      *Record
		parent WrapKey
		nk     NodeKey
	}{{f.fr, f.tk.WrapKey(), f.folder}, {f.fl, f.folder.WrapKey(), f.file}} {
		raw := tc.r.Marshal()
		r, err := ParseRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Marshal(), raw) || r.Hash() != sha256.Sum256(raw) || !bytes.Equal(r.Header(), raw[:RecordHeaderLen]) {
			t.Fatal("round trip")
		}
		if err := r.VerifySignature(); err != nil {
			t.Fatal(err)
		}
		nk, err := r.OpenKey(tc.parent)
		if err != nil || nk != tc.nk {
			t.Fatalf("OpenKey: %v", err)
		}
		if _, err := r.OpenBody(nk); err != nil {
			t.Fatal(err)
		}
		// Wrong keys.
		_, err = r.OpenKey(WrapKey(id32(1)))
		wantErr(t, err, coffer.ErrAuth, "record ")
		_, err = r.OpenBody(NodeKey(id32(1)))
		wantErr(t, err, coffer.ErrAuth, "record ")
		// Every mutation fails somewhere: parse, signature, key unwrap or body.
		for _, m := range mutations(raw) {
			r, err := ParseRecord(m)
			if err == nil {
				err = r.VerifySignature()
			}
			authOrCorrupt(t, err, "record")
		}
		// Without the signature check, a flipped bit in key, body or header still fails to open.
		for i := 0; i < len(raw)-64; i += 7 {
			if i >= 6 && i < 38 { // node and parent bytes: checked below via re-parenting
				continue
			}
			m := bytes.Clone(raw)
			m[i] ^= 1
			r, err := ParseRecord(m)
			if err == nil {
				var nk NodeKey
				if nk, err = r.OpenKey(tc.parent); err == nil {
					_, err = r.OpenBody(nk)
				}
			}
			authOrCorrupt(t, err, "record (unsigned check)")
		}
	}
	b, _ := f.fl.OpenBody(f.file)
	if b.Name != "report.pdf" || b.MTime != -5 || b.Mode != 0o644 || b.Content.Size != 3<<20+5 || len(b.Content.Chunks) != 4 {
		t.Fatalf("body %+v", b)
	}
}

func TestRecordMovedOrSwapped(t *testing.T) {
	f := newRecordFixture(t)
	// A server re-parenting a record (moving it elsewhere) or changing its version or kind breaks
	// the AEADs even before signatures are checked.
	for name, edit := range map[string]func(r *Record){
		"parent":  func(r *Record) { r.Parent = coffer.NodeID(id16(9)) },
		"node":    func(r *Record) { r.Node = coffer.NodeID(id16(9)) },
		"version": func(r *Record) { r.Version = 2; r.Prev = id32(1) },
		"kind":    func(r *Record) { r.Kind = KindFolder },
	} {
		r := *f.fl
		edit(&r)
		if err := r.VerifySignature(); err == nil {
			t.Fatalf("%s: signature still valid", name)
		}
		nk, err := r.OpenKey(f.folder.WrapKey())
		if err == nil {
			_, err = r.OpenBody(nk)
		}
		wantErr(t, err, coffer.ErrAuth, "")
	}
	// A record from one folder does not open under another's key.
	_, err := f.fl.OpenKey(f.tk.WrapKey())
	wantErr(t, err, coffer.ErrAuth, "")
}

func TestRecordHeaderRules(t *testing.T) {
	f := newRecordFixture(t)
	raw := f.fl.Marshal()
	put := func(off int, v []byte) []byte { m := bytes.Clone(raw); copy(m[off:], v); return m }
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	n2, one := id16(2), id32(1)
	cases := map[string][]byte{
		"magic":            put(0, []byte("CFR2")),
		"unknown kind 4":   put(4, []byte{4}),
		"unknown kind 0":   put(4, []byte{0}),
		"flags":            put(5, []byte{1}),
		"node: zero":       put(6, make([]byte, 16)),
		"equals node":      put(22, n2[:]),
		"version: zero":    put(38, u64(0)),
		"zero after":       put(38, u64(2)),
		"non-zero at":      put(46, one[:]),
		"body length":      put(110+60, []byte{0, 0, 0, 27}),
		"trailing":         append(bytes.Clone(raw), 0),
		"signature":        raw[:len(raw)-1],
		"16777217 outside": put(110+60, []byte{1, 0, 0, 1}),
		"wrapped key":      raw[:150],
		"truncated (need":  raw[:109],
	}
	for want, m := range cases {
		_, err := ParseRecord(m)
		wantErr(t, err, coffer.ErrCorrupt, want)
	}
	// Tombstones.
	signer := testSigner(1)
	ts := SealTombstone(f.fl.Node, f.fl.Parent, 2, f.fl.Hash(), signer)
	traw := ts.Marshal()
	if len(traw) != RecordHeaderLen+64 {
		t.Fatalf("tombstone length %d", len(traw))
	}
	got, err := ParseRecord(traw)
	if err != nil || got.VerifySignature() != nil || !bytes.Equal(got.Marshal(), traw) {
		t.Fatalf("tombstone round trip: %v", err)
	}
	_, err = got.OpenKey(f.folder.WrapKey())
	wantErr(t, err, coffer.ErrInvalid, "tombstone")
	v1 := bytes.Clone(traw)
	copy(v1[38:], u64(1))
	copy(v1[46:], make([]byte, 32))
	_, err = ParseRecord(v1)
	wantErr(t, err, coffer.ErrCorrupt, "tombstone at version 1")
	for _, m := range mutations(traw) {
		r, err := ParseRecord(m)
		if err == nil {
			err = r.VerifySignature()
		}
		authOrCorrupt(t, err, "tombstone")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("tombstone at version 1 did not panic")
			}
		}()
		SealTombstone(f.fl.Node, f.fl.Parent, 1, [32]byte{}, signer)
	}()
}

func TestSealRecordRules(t *testing.T) {
	signer := testSigner(1)
	nk, wk := NodeKey(id32(1)), WrapKey(id32(2))
	ck := ContentKey(id32(3))
	folder := &Body{Name: "a", Mode: 0o755}
	file := &Body{Name: "a", Content: testContent(ck, 0, DefaultChunkSize)}
	n1, n2 := coffer.NodeID(id16(1)), coffer.NodeID(id16(2))
	badCommit := testContent(ck, 10, DefaultChunkSize)
	badCommit.Commitment[0] ^= 1
	badLen := testContent(ck, 10, DefaultChunkSize)
	badLen.Chunks[0].Length++
	badCS := testContent(ck, 10, DefaultChunkSize)
	badCS.ChunkSize = 3 << 20
	cases := []struct {
		name    string
		kind    Kind
		node    coffer.NodeID
		parent  coffer.NodeID
		version uint64
		prev    [32]byte
		body    *Body
	}{
		{"tombstone kind", KindTombstone, n1, n2, 2, id32(1), folder},
		{"zero node", KindFolder, coffer.NodeID{}, n2, 1, [32]byte{}, folder},
		{"node is parent", KindFolder, n1, n1, 1, [32]byte{}, folder},
		{"version 0", KindFolder, n1, n2, 0, [32]byte{}, folder},
		{"prev at v1", KindFolder, n1, n2, 1, id32(1), folder},
		{"no prev at v2", KindFolder, n1, n2, 2, [32]byte{}, folder},
		{"nil body", KindFolder, n1, n2, 1, [32]byte{}, nil},
		{"bad name", KindFolder, n1, n2, 1, [32]byte{}, &Body{Name: "a/b"}},
		{"folder with content", KindFolder, n1, n2, 1, [32]byte{}, file},
		{"file without content", KindFile, n1, n2, 1, [32]byte{}, folder},
		{"role not top level", KindFolder, n1, n2, 1, [32]byte{}, &Body{Name: "a", Role: RoleTrash}},
		{"role on file", KindFile, n1, coffer.NodeID{}, 1, [32]byte{}, &Body{Name: "a", Role: RoleRoot, Content: file.Content}},
		{"unknown role", KindFolder, n1, coffer.NodeID{}, 1, [32]byte{}, &Body{Name: "a", Role: 3}},
		{"bad commitment", KindFile, n1, n2, 1, [32]byte{}, &Body{Name: "a", Content: badCommit}},
		{"bad chunk length", KindFile, n1, n2, 1, [32]byte{}, &Body{Name: "a", Content: badLen}},
		{"bad chunk size", KindFile, n1, n2, 1, [32]byte{}, &Body{Name: "a", Content: badCS}},
	}
	for _, c := range cases {
		_, err := SealRecord(c.kind, c.node, c.parent, c.version, c.prev, nk, wk, c.body, signer)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
		} else {
			wantErr(t, err, coffer.ErrInvalid, "")
		}
	}
	// Valid: empty file, version 2 with prev, trash origin.
	r, err := SealRecord(KindFile, n1, n2, 2, id32(1), nk, wk, &Body{Name: "e", TrashOrigin: coffer.NodeID(id16(5)), Content: file.Content}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if [32]byte(signer.Public().(ed25519.PublicKey)) != r.Author {
		t.Fatal("author not set from signer")
	}
	b, err := r.OpenBody(nk)
	if err != nil || b.TrashOrigin != coffer.NodeID(id16(5)) || b.Content.Size != 0 || len(b.Content.Chunks) != 0 {
		t.Fatalf("open: %+v %v", b, err)
	}
	// Two seals of the same record differ (random nonces) but both open.
	r2, _ := SealRecord(KindFile, n1, n2, 2, id32(1), nk, wk, &Body{Name: "e", Content: file.Content}, signer)
	if bytes.Equal(r.Body, r2.Body) || bytes.Equal(r.WrappedKey, r2.WrappedKey) {
		t.Fatal("nonces repeat")
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "...", ".a", "a b", "ü", "CON", string(bytes.Repeat([]byte("x"), 255)), "a\\b"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "/", "\x00", "a\x00b", "\xff", string(bytes.Repeat([]byte("x"), 256))} {
		wantErr(t, ValidateName(bad), coffer.ErrInvalid, "name")
	}
}
