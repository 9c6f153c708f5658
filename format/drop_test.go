package format

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"coffer"
)

func TestUploadLinkAndDrop(t *testing.T) {
	alice, eve := testBundle(50), testBundle(51)
	alicePub, evePub := alice.PublicKeys("alice"), eve.PublicKeys("eve")
	id, s := LinkID(id16(0x61)), LinkSecret(id32(0x62))
	tree, folder := coffer.TreeID(id16(0x63)), coffer.NodeID(id16(0x64))
	for _, pw := range [][]byte{nil, []byte("hunter2")} {
		var flags uint8
		var kdf KDFParams
		if pw != nil {
			flags, kdf = LinkFlagPassword, weakKDF()
		}
		keys := DeriveLinkKeys(s, pw, kdf)
		l, err := SealUploadLink(id, tree, folder, flags, kdf, keys, alice)
		if err != nil {
			t.Fatal(err)
		}
		raw := l.Marshal()
		got, err := ParseLink(raw)
		if err != nil || !bytes.Equal(got.Marshal(), raw) || got.VerifySignature() != nil || !got.UploadOnly() {
			t.Fatalf("round trip: %v", err)
		}
		uk, err := got.OpenUpload(keys)
		if err != nil {
			t.Fatal(err)
		}
		if uk.OwnerFingerprint != KeyFingerprint(alicePub) || uk.LinkKey != UploadLinkKey(alice, id) {
			t.Fatal("upload keys do not match the owner")
		}
		// No node key in an upload-only link; no upload keys in a read link.
		_, err = got.OpenNodeKey(keys)
		wantErr(t, err, coffer.ErrInvalid, "upload-only")
		_, err = got.OpenUpload(DeriveLinkKeys(LinkSecret(id32(1)), pw, kdf))
		wantErr(t, err, coffer.ErrAuth, "link")
		for _, m := range mutations(raw) {
			if ml, err := ParseLink(m); err == nil && !bytes.Equal(m[:linkPrefixLen+120], raw[:linkPrefixLen+120]) {
				_, err = ml.OpenUpload(keys)
				if err == nil {
					t.Fatal("a changed upload link still opens")
				}
			}
		}
	}
	if _, err := SealLink(id, tree, folder, KindFolder, LinkFlagUploadOnly, KDFParams{}, DeriveLinkKeys(s, nil, KDFParams{}), NodeKey{}, alice.SigningKey()); err == nil {
		t.Fatal("SealLink sealed an upload-only link")
	}

	// Drops.
	uk := &UploadKeys{LinkKey: UploadLinkKey(alice, id), OwnerFingerprint: KeyFingerprint(alicePub)}
	ck := ContentKey(id32(0x70))
	plain := []byte("hello")
	ct := &Content{Key: ck, Commitment: ck.Commitment(), Size: 5, ChunkSize: DefaultChunkSize, Hash: sha256.Sum256(plain),
		Chunks: []ChunkRef{{Blob: coffer.BlobID(id32(0x71)), Length: 21}}}
	f := &DropFile{Path: []string{"a", "b"}, Name: "hello.txt", MTime: 42, Mode: 0o600, Content: ct}
	dropID := DropID(id16(0x72))
	d, err := SealDrop(id, dropID, alicePub, uk, f)
	if err != nil {
		t.Fatal(err)
	}
	raw := d.Marshal()
	pd, err := ParseDrop(raw)
	if err != nil || !bytes.Equal(pd.Marshal(), raw) {
		t.Fatalf("round trip: %v", err)
	}
	got, err := pd.Open(alice)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != f.Name || len(got.Path) != 2 || got.Path[1] != "b" || got.MTime != 42 || got.Mode != 0o600 ||
		got.Content.Key != ck || got.Content.Chunks[0] != ct.Chunks[0] {
		t.Fatalf("opened %+v", got)
	}
	// Another recipient cannot open it; the visitor cannot seal to keys other than the link's.
	_, err = pd.Open(eve)
	wantErr(t, err, coffer.ErrAuth, "drop")
	_, err = SealDrop(id, dropID, evePub, uk, f)
	wantErr(t, err, coffer.ErrInvalid, "fingerprint")
	// A drop made by someone without the link key (the server, say, which knows alice's public
	// keys) is refused.
	forged, err := SealDrop(id, dropID, alicePub, &UploadKeys{LinkKey: id32(9), OwnerFingerprint: uk.OwnerFingerprint}, f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = forged.Open(alice)
	wantErr(t, err, coffer.ErrAuth, "drop")
	// Moving a drop to another link or ID breaks the HPKE context.
	moved := *pd
	moved.ID[0] ^= 1
	_, err = moved.Open(alice)
	wantErr(t, err, coffer.ErrAuth, "drop")
	for _, m := range mutations(raw) {
		md, err := ParseDrop(m)
		if err == nil {
			_, err = md.Open(alice)
		}
		authOrCorrupt(t, err, "drop")
	}
	// Sealing refuses what parsing refuses.
	for name, bad := range map[string]*DropFile{
		"name":    {Name: "../x", Mode: 0o644, Content: ct},
		"path":    {Path: []string{".."}, Name: "x", Content: ct},
		"mode":    {Name: "x", Mode: 0o4755},
		"content": {Name: "x", Content: &Content{Key: ck, Commitment: ck.Commitment(), Size: 5, ChunkSize: DefaultChunkSize}},
	} {
		_, err := SealDrop(id, dropID, alicePub, uk, bad)
		wantErr(t, err, coffer.ErrCorrupt, name)
	}
	if DropNodeID(id, dropID) == DropNodeID(id, DropID(id16(0x73))) {
		t.Fatal("drop node IDs collide")
	}
}

func TestBodyOrigin(t *testing.T) {
	b := &Body{Name: "x", MTime: 1, Mode: 0o644, Origin: LinkID(id16(7))}
	got, err := parseBody(marshalBody(b), "body")
	if err != nil || got.Origin != b.Origin {
		t.Fatalf("origin round trip: %v", err)
	}
	bad := appendTLV(marshalBody(&Body{Name: "x", MTime: 1, Mode: 0o644}), bodyTagOrigin, make([]byte, 16))
	_, err = parseBody(bad, "body")
	wantErr(t, err, coffer.ErrCorrupt, "origin")
	unknown := appendTLV(marshalBody(&Body{Name: "x", MTime: 1, Mode: 0o644}), bodyTagMax+1, []byte{1})
	_, err = parseBody(unknown, "body")
	wantErr(t, err, coffer.ErrCorrupt, "unknown tag")
}
