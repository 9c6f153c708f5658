package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"strings"

	"coffer"
)

// drops adds the upload-only link and drop vectors (§12.1, §12.3).
func (s *vectorSet) drops() error {
	rng := vecRand("drop")
	owner := newBundle(rng, coffer.AccountID(random16(rng)))
	ownerPub := owner.PublicKeys("alice")
	other := newBundle(rng, coffer.AccountID(random16(rng)))
	id, sec := LinkID(random16(rng)), LinkSecret(random32(rng))
	tree, folder := coffer.TreeID(random16(rng)), coffer.NodeID(random16(rng))
	url := FormatLinkURL("https://drive.example.com", id, sec)
	keys := DeriveLinkKeys(sec, nil, KDFParams{})
	fp, lk := KeyFingerprint(ownerPub), UploadLinkKey(owner, id)
	l, _ := sealLink(rng, id, tree, folder, KindFolder, LinkFlagUploadOnly, KDFParams{}, keys, lk, fp[:], owner.SigningKey())
	linkFields := []string{"url", url, "owner kem seed", hx(owner.KEMSeed[:])}
	s.add("link_upload", ExpectSuccess, "link", "upload-only folder link: the key field seals the owner's fingerprint", l.Marshal(),
		append(linkFields, "link key", hx(lk[:]), "owner fingerprint", hx(fp[:]),
			"auth public", hx(keys.Auth.Public().(ed25519.PublicKey)))...)
	asRead := *l
	asRead.Flags = 0
	copy(asRead.Sig[:], ed25519.Sign(owner.SigningKey(), domain("coffer/v1 link", asRead.signedPart())))
	s.add("link_upload_flag_cleared", ExpectAuth, "link", "upload-only bit cleared and re-signed: the link key no longer unwraps",
		asRead.Marshal(), linkFields...)

	ck := ContentKey(random32(rng))
	plain := []byte("Minutes of the meeting, 2026-01-01.\n")
	good := &Content{Key: ck, Commitment: ck.Commitment(), Size: uint64(len(plain)), ChunkSize: DefaultChunkSize,
		Hash: sha256.Sum256(plain), Chunks: []ChunkRef{{Blob: coffer.BlobID(random32(rng)), Offset: 0, Length: uint32(len(plain)) + tagSize}}}
	file := &DropFile{Path: []string{"reports", "2026"}, Name: "minutes.txt", MTime: 1767225600123456789, Mode: 0o644, Content: good}
	auth := dropAuth(lk)
	dropID := DropID(random16(rng))
	d := &Drop{Link: id, ID: dropID, Owner: owner.Account}
	ownerFields := []string{"owner account", hx(owner.Account[:]), "owner kem seed", hx(owner.KEMSeed[:])}
	nid := DropNodeID(id, dropID)

	type dropVec struct {
		name, expect, comment string
		pt                    []byte
		fields                []string
	}
	withContent := func(f DropFile, content []byte) []byte {
		f.Content = nil
		return appendTLV(marshalDropFile(&f, auth), dropTagContent, content)
	}
	badCommit := *good
	badCommit.Commitment[0] ^= 1
	hugeCount := marshalContent(good)
	binary.BigEndian.PutUint32(hugeCount[contentFixedLen-4:], 0xffffffff)
	emptyDir := &DropFile{Name: "scans", MTime: 1767225600000000000, Mode: 0o755}
	vecs := []dropVec{
		{"drop", ExpectSuccess, "a file in reports/2026", marshalDropFile(file, auth),
			[]string{"name", file.Name, "path", strings.Join(file.Path, "/"), "size", "36", "content key", hx(ck[:]), "node", hx(nid[:])}},
		{"drop_folder", ExpectSuccess, "an empty folder", marshalDropFile(emptyDir, auth),
			[]string{"name", emptyDir.Name, "path", "", "node", hx(nid[:])}},
		{"drop_wrong_link_key", ExpectAuth, "authenticator of another link key (not made by a holder of the link)",
			marshalDropFile(file, dropAuth(UploadLinkKey(other, id))), nil},
		{"drop_bad_commitment", ExpectAuth, "content key commitment bit flipped", withContent(*file, marshalContent(&badCommit)), nil},
		{"drop_bad_name", ExpectParse, "name ../x", marshalDropFile(&DropFile{Name: "../x", MTime: 1, Mode: 0o644, Content: good}, auth), nil},
		{"drop_bad_path", ExpectParse, "path component ..", marshalDropFile(&DropFile{Path: []string{"a", ".."}, Name: "x", MTime: 1, Mode: 0o644, Content: good}, auth), nil},
		{"drop_chunk_count", ExpectParse, "content chunk count 2^32-1 with one reference", withContent(*file, hugeCount), nil},
		{"drop_bad_mode", ExpectParse, "setuid bit in the mode", marshalDropFile(&DropFile{Name: "x", MTime: 1, Mode: 0o4755, Content: good}, auth), nil},
	}
	var first []byte
	for _, v := range vecs {
		dv := *d
		if err := s.sealDropVector(&dv, owner, ownerPub, v.name, v.pt); err != nil {
			return err
		}
		if first == nil {
			first = dv.Marshal()
		}
		s.add(v.name, v.expect, "drop", v.comment, dv.Marshal(), append(ownerFields, v.fields...)...)
	}
	s.add("drop_wrong_owner", ExpectAuth, "drop", "drop opened by another account", first,
		"owner account", hx(other.Account[:]), "owner kem seed", hx(other.KEMSeed[:]))
	s.add("drop_truncated", ExpectParse, "drop", "last byte missing", first[:len(first)-1], ownerFields...)
	return nil
}

// sealDropVector sets d.Sealed to an HPKE ciphertext of pt: the previous vector's if it still
// opens to pt, else a fresh one.
func (s *vectorSet) sealDropVector(d *Drop, owner *Bundle, ownerPub *PublicKeys, name string, pt []byte) error {
	kdf, aead := inviteSuite()
	if pv := s.prev[name]; pv != nil {
		if old, err := ParseDrop(pv.Data); err == nil && old.Link == d.Link && old.ID == d.ID && old.Owner == d.Owner {
			priv, err := owner.KEMKey()
			if err != nil {
				return err
			}
			if got, err := hpke.Open(priv, kdf, aead, d.hpkeInfo(), old.Sealed); err == nil && bytes.Equal(got, pt) {
				d.Sealed = old.Sealed
				return nil
			}
		}
	}
	pub, err := hpke.MLKEM768X25519().NewPublicKey(ownerPub.KEM)
	if err != nil {
		return err
	}
	d.Sealed, err = hpke.Seal(pub, kdf, aead, d.hpkeInfo(), pt)
	return err
}
