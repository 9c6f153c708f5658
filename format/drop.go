package format

import (
	"bytes"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"coffer"
)

// DropID identifies one anonymous upload (a drop) through an upload-only link.
type DropID [16]byte

// NewDropID returns a random drop ID.
func NewDropID() (id DropID) { fill(rand.Reader, id[:]); return id }

// Drop layout.
const (
	dropHeaderLen = 4 + 16 + 16 + 16 // everything before sealedLen
	dropEncLen    = 1120             // HPKE MLKEM768-X25519 encapsulated key
	// MaxDropPlaintext bounds a drop's plaintext (4 MiB: about 95,000 chunk references, a
	// 93 GiB file at the default chunk size).
	MaxDropPlaintext = 4 << 20
	// MaxDropLen is the largest valid drop.
	MaxDropLen = dropHeaderLen + 4 + dropEncLen + MaxDropPlaintext + tagSize
	// MaxDropPath is the most folder-path components a drop may carry.
	MaxDropPath = 32
	// MaxDropMode is the largest mode a drop may carry (permission bits only).
	MaxDropMode = 0o777
)

// Drop plaintext TLV tags. Tags 1-3 and 6 have the meaning and encoding of the body tags (§7).
const (
	dropTagName    = 1
	dropTagMTime   = 2
	dropTagMode    = 3
	dropTagPath    = 4
	dropTagAuth    = 5
	dropTagContent = 6
)

// Drop is an anonymous upload through an upload-only link (doc/FORMAT.md §12.3):
// "CFD1" | link[16] | drop[16] | owner account[16] | sealedLen u32 | sealed, where sealed is an
// HPKE ciphertext (enc || AEAD) to the owner's KEM key of the DropFile. It is not signed: the
// visitor is anonymous. The owner opens it (Open), checks it and re-signs it into the folder.
type Drop struct {
	Link   LinkID
	ID     DropID
	Owner  coffer.AccountID
	Sealed []byte
}

// DropFile is what a drop carries: one file (Content non-nil) or one empty folder (Content nil)
// named Name, inside the folder path Path (relative to the link's folder; empty: directly in it).
type DropFile struct {
	Path    []string
	Name    string
	MTime   int64 // Unix nanoseconds
	Mode    uint32
	Content *Content
}

// DropNodeID is the node ID of the file record the owner imports drop id of link as:
// the first 16 bytes of H("coffer/v1 drop node" || 0x00 || link || drop). It makes imports
// idempotent, and no visitor can pick the ID of an existing node.
func DropNodeID(link LinkID, id DropID) coffer.NodeID {
	h := sha256.Sum256(domain("coffer/v1 drop node", link[:], id[:]))
	return coffer.NodeID(h[:16])
}

func dropAuth(lk [32]byte) [32]byte { return derive(lk[:], "coffer/v1 drop auth") }

func (d *Drop) object() string { return "drop " + short(d.ID[:]) }

func (d *Drop) header() []byte {
	b := make([]byte, 0, dropHeaderLen+4+len(d.Sealed))
	b = append(b, "CFD1"...)
	b = append(b, d.Link[:]...)
	b = append(b, d.ID[:]...)
	return append(b, d.Owner[:]...)
}

func (d *Drop) hpkeInfo() []byte { return domain("coffer/v1 drop", d.header()) }

// Marshal returns the drop's bytes.
func (d *Drop) Marshal() []byte {
	b := d.header()
	b = binary.BigEndian.AppendUint32(b, uint32(len(d.Sealed)))
	return append(b, d.Sealed...)
}

// ParseDrop parses a drop's structure (no keys needed; the server uses it).
func ParseDrop(b []byte) (*Drop, error) {
	r := reader{b: b, obj: "drop"}
	d := &Drop{}
	r.magic("CFD1")
	r.copyTo(d.Link[:], "link id")
	r.copyTo(d.ID[:], "drop id")
	r.copyTo(d.Owner[:], "owner")
	n := r.u32("sealed length")
	if r.err == nil && (n < dropEncLen+tagSize || n > dropEncLen+MaxDropPlaintext+tagSize) {
		r.fail("sealed length", fmt.Sprintf("%d, want %d to %d", n, dropEncLen+tagSize, dropEncLen+MaxDropPlaintext+tagSize))
	}
	if r.err == nil {
		d.Sealed = bytes.Clone(r.take(int(n), "sealed"))
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	switch {
	case d.Link == LinkID{}:
		return nil, corruptErr("drop", "link id", "zero")
	case d.ID == DropID{}:
		return nil, corruptErr("drop", "drop id", "zero")
	case d.Owner == coffer.AccountID{}:
		return nil, corruptErr("drop", "owner", "zero")
	}
	return d, nil
}

// SealDrop encrypts f to the owner's KEM key (owner must be the public keys the visitor
// authenticated with UploadKeys.OwnerFingerprint) and authenticates it with the link key.
func SealDrop(link LinkID, id DropID, owner *PublicKeys, uk *UploadKeys, f *DropFile) (*Drop, error) {
	if KeyFingerprint(owner) != uk.OwnerFingerprint {
		return nil, invalidf("SealDrop: public keys do not match the link's owner fingerprint")
	}
	if link == (LinkID{}) || id == (DropID{}) {
		return nil, invalidf("SealDrop: zero link or drop id")
	}
	if err := f.validate("drop"); err != nil {
		return nil, err
	}
	pt := marshalDropFile(f, dropAuth(uk.LinkKey))
	if len(pt) > MaxDropPlaintext {
		return nil, fmt.Errorf("format: SealDrop: %d bytes of description, maximum %d (file too large for one drop): %w",
			len(pt), MaxDropPlaintext, coffer.ErrInvalid)
	}
	d := &Drop{Link: link, ID: id, Owner: owner.Account}
	pub, err := hpke.MLKEM768X25519().NewPublicKey(owner.KEM)
	if err != nil {
		return nil, invalidf("SealDrop: owner KEM key: %v", err)
	}
	kdf, aead := inviteSuite()
	if d.Sealed, err = hpke.Seal(pub, kdf, aead, d.hpkeInfo(), pt); err != nil {
		return nil, fmt.Errorf("format: SealDrop: hpke: %w", err)
	}
	return d, nil
}

// Open decrypts a drop addressed to the bundle's account and checks everything in it (see
// DropOpener.Open). To open many drops, use one DropOpener: deriving the KEM key is the costly
// part.
func (d *Drop) Open(owner *Bundle) (*DropFile, error) {
	o, err := NewDropOpener(owner)
	if err != nil {
		return nil, err
	}
	return o.Open(d)
}

// DropOpener opens the drops addressed to one account.
type DropOpener struct {
	owner *Bundle
	priv  hpke.PrivateKey
}

// NewDropOpener derives owner's KEM key once for opening drops.
func NewDropOpener(owner *Bundle) (*DropOpener, error) {
	priv, err := owner.KEMKey()
	if err != nil {
		return nil, err
	}
	return &DropOpener{owner: owner, priv: priv}, nil
}

// Open decrypts a drop and checks everything in it: the owner account, the HPKE open and the
// link-key authenticator (ErrAuth: not made by a holder of the link, or altered), then the
// plaintext rules (ErrCorrupt naming the field: names, path, mode, content structure; a content
// key commitment mismatch is ErrAuth).
func (o *DropOpener) Open(d *Drop) (*DropFile, error) {
	if d.Owner != o.owner.Account {
		return nil, authErr(d.object())
	}
	kdf, aead := inviteSuite()
	pt, err := hpke.Open(o.priv, kdf, aead, d.hpkeInfo(), d.Sealed)
	if err != nil {
		return nil, authErr(d.object())
	}
	f, auth, err := parseDropFile(pt, d.object())
	if err != nil {
		return nil, err
	}
	want := dropAuth(UploadLinkKey(o.owner, d.Link))
	if !hmac.Equal(auth[:], want[:]) {
		return nil, authErr(d.object())
	}
	return f, nil
}

// validate checks the DropFile rules (for sealing; parsing checks the same).
func (f *DropFile) validate(object string) error {
	if len(f.Path) > MaxDropPath {
		return corruptErr(object, "path", fmt.Sprintf("%d components, maximum %d", len(f.Path), MaxDropPath))
	}
	for _, e := range f.Path {
		if ValidateName(e) != nil {
			return corruptErr(object, "path", "invalid component")
		}
	}
	if ValidateName(f.Name) != nil {
		return corruptErr(object, "name", "invalid")
	}
	if f.Mode > MaxDropMode {
		return corruptErr(object, "mode", fmt.Sprintf("%#o has bits outside 0777", f.Mode))
	}
	if f.Content != nil {
		if len(f.Content.Chunks) > 0xffffffff {
			return corruptErr(object, "content chunks", "too many")
		}
		return f.Content.validate(object)
	}
	return nil
}

func marshalDropFile(f *DropFile, auth [32]byte) []byte {
	var scratch [8]byte
	out := appendTLV(nil, dropTagName, []byte(f.Name))
	out = appendTLV(out, dropTagMTime, binary.BigEndian.AppendUint64(scratch[:0], uint64(f.MTime)))
	out = appendTLV(out, dropTagMode, binary.BigEndian.AppendUint32(scratch[:0], f.Mode))
	if len(f.Path) > 0 {
		var p []byte
		for _, e := range f.Path {
			p = append(p, uint8(len(e)))
			p = append(p, e...)
		}
		out = appendTLV(out, dropTagPath, p)
	}
	out = appendTLV(out, dropTagAuth, auth[:])
	if f.Content != nil {
		out = appendTLV(out, dropTagContent, marshalContent(f.Content))
	}
	return out
}

func parseDropFile(pt []byte, object string) (*DropFile, [32]byte, error) {
	var auth [32]byte
	items, err := parseTLV(pt, object, dropTagContent)
	if err != nil {
		return nil, auth, err
	}
	f := &DropFile{}
	var seen [dropTagContent + 1]bool
	for _, it := range items {
		seen[it.tag] = true
		switch it.tag {
		case dropTagName:
			f.Name = string(it.value)
		case dropTagMTime:
			if err := it.wantLen(object, 8, "mtime"); err != nil {
				return nil, auth, err
			}
			f.MTime = int64(binary.BigEndian.Uint64(it.value))
		case dropTagMode:
			if err := it.wantLen(object, 4, "mode"); err != nil {
				return nil, auth, err
			}
			f.Mode = binary.BigEndian.Uint32(it.value)
		case dropTagPath:
			for v := it.value; len(v) > 0; {
				n := int(v[0])
				if n == 0 || 1+n > len(v) {
					return nil, auth, corruptErr(object, "path", "malformed component")
				}
				if len(f.Path) == MaxDropPath {
					return nil, auth, corruptErr(object, "path", fmt.Sprintf("more than %d components", MaxDropPath))
				}
				f.Path = append(f.Path, string(v[1:1+n]))
				v = v[1+n:]
			}
			if len(f.Path) == 0 {
				return nil, auth, corruptErr(object, "path", "empty (omit the tag instead)")
			}
		case dropTagAuth:
			if err := it.wantLen(object, 32, "auth"); err != nil {
				return nil, auth, err
			}
			auth = [32]byte(it.value)
		case dropTagContent:
			c, err := parseContent(it.value, object)
			if err != nil {
				return nil, auth, err
			}
			f.Content = c
		}
	}
	for _, tag := range []int{dropTagName, dropTagMTime, dropTagMode, dropTagAuth} {
		if !seen[tag] {
			return nil, auth, corruptErr(object, fmt.Sprintf("tlv tag %d", tag), "required tag missing")
		}
	}
	if err := f.validate(object); err != nil {
		return nil, auth, err
	}
	return f, auth, nil
}
