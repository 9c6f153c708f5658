package format

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"

	"coffer"
)

// LinkID identifies a share link. It appears in the link URL's path.
type LinkID [16]byte

// LinkSecret is the 32-byte secret S of a link. It only ever appears in the URL fragment and is
// never sent to the server.
type LinkSecret [32]byte

// Link flags.
const (
	LinkFlagPassword   uint8 = 1 << 0
	LinkFlagUploadOnly uint8 = 1 << 1
)

// Link record layout.
const (
	linkPrefixLen = 79 // everything before wrappedLinkKey
	// LinkLen is the length of a link record.
	LinkLen = linkPrefixLen + 2*wrappedSize + 32 + sigSize
)

// Link is a share-link record:
// "CFL1" | link[16] | tree[16] | node[16] | kind u8 | flags u8 | t u32 | m u32 | p u8 | salt[16] |
// wrappedLinkKey[60] | wrappedNodeKey[60] | owner[32] | sig[64].
type Link struct {
	ID             LinkID
	Tree           coffer.TreeID
	Node           coffer.NodeID
	Kind           Kind      // KindFolder or KindFile
	Flags          uint8     // LinkFlagPassword | LinkFlagUploadOnly
	KDF            KDFParams // non-zero iff Flags has LinkFlagPassword
	WrappedLinkKey [wrappedSize]byte
	WrappedNodeKey [wrappedSize]byte
	Owner          [32]byte // Ed25519 public key
	Sig            [64]byte
}

// LinkKeys are what a link secret (and password) yields: the key that unwraps the link key and
// the LinkAuth signing key whose public half the server stores as the link's verifier.
type LinkKeys struct {
	Secret [32]byte
	Auth   ed25519.PrivateKey
}

// NewLinkID returns a random link ID whose base64url form does not begin with '-' (the first
// six bits are not 62), so that the ID can be given as a command-line argument (`coffer link
// revoke ID`) without being taken for a flag. Readers accept any ID.
func NewLinkID() (id LinkID) {
	for {
		fill(rand.Reader, id[:])
		if id[0]>>2 != 62 {
			return id
		}
	}
}

// NewLinkSecret returns a random link secret.
func NewLinkSecret() LinkSecret { return random32(rand.Reader) }

// DeriveLinkKeys derives a link's keys from S and, for password links (kdf non-zero), from
// Argon2id(password, kdf). The caller MUST have checked kdf (KDFParams.Check) for a link it did not
// create; it panics if kdf is non-zero with a zero Time or Threads.
func DeriveLinkKeys(s LinkSecret, password []byte, kdf KDFParams) *LinkKeys {
	ikm := s[:]
	if kdf != (KDFParams{}) {
		if kdf.Time == 0 || kdf.Threads == 0 {
			panic("format: DeriveLinkKeys: zero Argon2id time or threads")
		}
		p := argon2.IDKey(password, kdf.Salt[:], kdf.Time, kdf.MemoryKiB, kdf.Threads, 32)
		ikm = append(append([]byte{}, s[:]...), p...)
	}
	seed := derive(ikm, "coffer/v1 link auth")
	return &LinkKeys{Secret: derive(ikm, "coffer/v1 link secret"), Auth: ed25519.NewKeyFromSeed(seed[:])}
}

// LinkAuthMessage is what a visitor signs with LinkKeys.Auth to answer the server's challenge:
// "coffer/v1 link auth proof" || 0x00 || link[16] || challenge[32].
func LinkAuthMessage(id LinkID, challenge [32]byte) []byte {
	return domain("coffer/v1 link auth proof", id[:], challenge[:])
}

func (l *Link) object() string { return "link " + short(l.ID[:]) }

func (l *Link) prefix() []byte {
	b := make([]byte, 0, LinkLen)
	b = append(b, "CFL1"...)
	b = append(b, l.ID[:]...)
	b = append(b, l.Tree[:]...)
	b = append(b, l.Node[:]...)
	b = append(b, uint8(l.Kind), l.Flags)
	b = binary.BigEndian.AppendUint32(b, l.KDF.Time)
	b = binary.BigEndian.AppendUint32(b, l.KDF.MemoryKiB)
	b = append(b, l.KDF.Threads)
	return append(b, l.KDF.Salt[:]...)
}

func (l *Link) signedPart() []byte {
	b := append(l.prefix(), l.WrappedLinkKey[:]...)
	b = append(b, l.WrappedNodeKey[:]...)
	return append(b, l.Owner[:]...)
}

// Marshal returns the 295-byte link record.
func (l *Link) Marshal() []byte { return append(l.signedPart(), l.Sig[:]...) }

// check enforces the structural rules shared by parsing and sealing.
func (l *Link) check() error {
	const obj = "link"
	pw := l.Flags&LinkFlagPassword != 0
	kdf := l.KDF
	switch {
	case l.Kind != KindFolder && l.Kind != KindFile:
		return corruptErr(obj, "kind", fmt.Sprintf("%s cannot be linked", l.Kind))
	case l.Flags&^(LinkFlagPassword|LinkFlagUploadOnly) != 0:
		return corruptErr(obj, "flags", fmt.Sprintf("unknown bits 0x%02x", l.Flags))
	case l.Flags&LinkFlagUploadOnly != 0 && l.Kind != KindFolder:
		return corruptErr(obj, "flags", "upload-only link to a file")
	case l.Node.IsZero():
		return corruptErr(obj, "node", "zero")
	case pw && (kdf.Time == 0 || kdf.MemoryKiB == 0 || kdf.Threads == 0 || isZero(kdf.Salt[:])):
		return corruptErr(obj, "kdf", "zero parameter or salt in a password link")
	case !pw && kdf != (KDFParams{}):
		return corruptErr(obj, "kdf", "non-zero in a link without password")
	}
	return nil
}

// SealLink builds and signs a link record giving the holders of keys read access to node (whose
// key is nk). flags and kdf must agree (kdf non-zero iff LinkFlagPassword), flags must not have
// LinkFlagUploadOnly (see SealUploadLink) and keys must come from DeriveLinkKeys with the same kdf.
func SealLink(id LinkID, tree coffer.TreeID, node coffer.NodeID, kind Kind, flags uint8, kdf KDFParams,
	keys *LinkKeys, nk NodeKey, owner ed25519.PrivateKey) (*Link, error) {
	if flags&LinkFlagUploadOnly != 0 {
		return nil, invalidf("SealLink: upload-only links are sealed by SealUploadLink")
	}
	return sealLink(rand.Reader, id, tree, node, kind, flags, kdf, keys, random32(rand.Reader), nk[:], owner)
}

// SealUploadLink builds and signs an upload-only (file-request) link to folder node. The link
// carries no node key: its 60-byte key field seals the owner's key fingerprint (KeyFingerprint
// of the owner's public keys) under the link key, so that a visitor holding the URL can authenticate
// the owner's KEM key although the server serves it. The link key is derived from the owner's
// bundle (UploadLinkKey), so the owner can recompute it to authenticate drops (§12.3).
func SealUploadLink(id LinkID, tree coffer.TreeID, node coffer.NodeID, flags uint8, kdf KDFParams,
	keys *LinkKeys, owner *Bundle) (*Link, error) {
	kem, err := owner.KEMKey()
	if err != nil {
		return nil, err
	}
	fp := sha256.Sum256(domain("coffer/v1 fingerprint", owner.SigningKey().Public().(ed25519.PublicKey), kem.PublicKey().Bytes()))
	return sealLink(rand.Reader, id, tree, node, KindFolder, flags|LinkFlagUploadOnly, kdf, keys,
		UploadLinkKey(owner, id), fp[:], owner.SigningKey())
}

// UploadLinkKey is the link key LK of an upload-only link: HKDF(KEM seed || link, "coffer/v1
// upload link key"). Only the owner (who holds the KEM seed) and holders of the link secret
// (who unwrap it from the link record) know it.
func UploadLinkKey(owner *Bundle, id LinkID) [32]byte {
	return derive(append(append([]byte{}, owner.KEMSeed[:]...), id[:]...), "coffer/v1 upload link key")
}

// KeyFingerprint is the raw 32-byte fingerprint F of a public-key record (§6): H("coffer/v1
// fingerprint" || 0x00 || signing || KEM).
func KeyFingerprint(p *PublicKeys) [32]byte {
	return sha256.Sum256(domain("coffer/v1 fingerprint", p.Signing, p.KEM))
}

// sealLink seals lk under keys and payload (a node key, or the owner fingerprint of an
// upload-only link) under lk.
func sealLink(rng io.Reader, id LinkID, tree coffer.TreeID, node coffer.NodeID, kind Kind, flags uint8, kdf KDFParams,
	keys *LinkKeys, lk [32]byte, payload []byte, owner ed25519.PrivateKey) (*Link, error) {
	l := &Link{ID: id, Tree: tree, Node: node, Kind: kind, Flags: flags, KDF: kdf}
	if err := l.check(); err != nil {
		return nil, fmt.Errorf("format: SealLink: %v: %w", err, coffer.ErrInvalid)
	}
	copy(l.WrappedLinkKey[:], sealRandom(rng, nil, keys.Secret, lk[:], l.prefix()))
	key, aad := l.payloadKey(lk)
	copy(l.WrappedNodeKey[:], sealRandom(rng, nil, key, payload, aad))
	copy(l.Owner[:], owner.Public().(ed25519.PublicKey))
	copy(l.Sig[:], ed25519.Sign(owner, domain("coffer/v1 link", l.signedPart())))
	return l, nil
}

// payloadKey returns the key and AAD of the link's second wrapped field: the node key of a read
// link, the owner fingerprint of an upload-only link.
func (l *Link) payloadKey(lk [32]byte) ([32]byte, []byte) {
	if l.Flags&LinkFlagUploadOnly != 0 {
		return derive(lk[:], "coffer/v1 link owner key"), domain("coffer/v1 link owner", l.ID[:], l.Node[:])
	}
	return derive(lk[:], "coffer/v1 link node key"), linkNodeAAD(l.ID, l.Node)
}

func linkNodeAAD(id LinkID, node coffer.NodeID) []byte {
	return domain("coffer/v1 link node", id[:], node[:])
}

// ParseLink parses a link record's structure (no keys needed; the server uses it).
func ParseLink(b []byte) (*Link, error) {
	r := reader{b: b, obj: "link"}
	l := &Link{}
	r.magic("CFL1")
	r.copyTo(l.ID[:], "link id")
	r.copyTo(l.Tree[:], "tree")
	r.copyTo(l.Node[:], "node")
	l.Kind = Kind(r.u8("kind"))
	l.Flags = r.u8("flags")
	l.KDF.Time = r.u32("kdf time")
	l.KDF.MemoryKiB = r.u32("kdf memory")
	l.KDF.Threads = r.u8("kdf threads")
	r.copyTo(l.KDF.Salt[:], "kdf salt")
	r.copyTo(l.WrappedLinkKey[:], "wrapped link key")
	r.copyTo(l.WrappedNodeKey[:], "wrapped node key")
	r.copyTo(l.Owner[:], "owner")
	r.copyTo(l.Sig[:], "signature")
	if err := r.end(); err != nil {
		return nil, err
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	return l, nil
}

// VerifySignature checks Sig against Owner (ErrAuth). It does not check who Owner is.
func (l *Link) VerifySignature() error {
	if !ed25519.Verify(l.Owner[:], domain("coffer/v1 link", l.signedPart()), l.Sig[:]) {
		return authErr(l.object())
	}
	return nil
}

// UploadOnly reports whether l is an upload-only (file-request) link.
func (l *Link) UploadOnly() bool { return l.Flags&LinkFlagUploadOnly != 0 }

// openPayload unwraps the link key and then the second wrapped field (ErrAuth on any failure).
func (l *Link) openPayload(keys *LinkKeys) (lk [32]byte, payload []byte, err error) {
	k, ok := openNonced(keys.Secret, l.WrappedLinkKey[:], l.prefix())
	if !ok || len(k) != 32 {
		return lk, nil, authErr(l.object())
	}
	lk = [32]byte(k)
	key, aad := l.payloadKey(lk)
	p, ok := openNonced(key, l.WrappedNodeKey[:], aad)
	if !ok || len(p) != 32 {
		return lk, nil, authErr(l.object())
	}
	return lk, p, nil
}

// OpenNodeKey unwraps the link key and then the node key (ErrAuth on any failure). An
// upload-only link has no node key (ErrInvalid).
func (l *Link) OpenNodeKey(keys *LinkKeys) (NodeKey, error) {
	if l.UploadOnly() {
		return NodeKey{}, fmt.Errorf("format: %s: upload-only link has no node key: %w", l.object(), coffer.ErrInvalid)
	}
	_, nk, err := l.openPayload(keys)
	if err != nil {
		return NodeKey{}, err
	}
	return NodeKey(nk), nil
}

// UploadKeys are what a visitor of an upload-only link unwraps with the link secret.
type UploadKeys struct {
	LinkKey          [32]byte // LK, which authenticates the visitor's drops to the owner
	OwnerFingerprint [32]byte // KeyFingerprint of the owner's public keys
}

// OpenUpload unwraps an upload-only link's key and owner fingerprint (ErrAuth on any failure;
// ErrInvalid for a read link).
func (l *Link) OpenUpload(keys *LinkKeys) (*UploadKeys, error) {
	if !l.UploadOnly() {
		return nil, fmt.Errorf("format: %s: not an upload-only link: %w", l.object(), coffer.ErrInvalid)
	}
	lk, fp, err := l.openPayload(keys)
	if err != nil {
		return nil, err
	}
	return &UploadKeys{LinkKey: lk, OwnerFingerprint: [32]byte(fp)}, nil
}

// FormatLinkURL returns server + "/s/" + base64url(id) + "#" + base64url(s), where server is the
// origin ("https://HOST", no trailing slash, optionally with a path prefix).
func FormatLinkURL(server string, id LinkID, s LinkSecret) string {
	enc := base64.RawURLEncoding
	return server + "/s/" + enc.EncodeToString(id[:]) + "#" + enc.EncodeToString(s[:])
}

// ParseLinkURL splits a link URL made by FormatLinkURL into the server, the link ID and the
// secret. It accepts only canonical URLs (https:// or http://, a non-empty host, unpadded
// base64url); errors wrap coffer.ErrInvalid.
func ParseLinkURL(u string) (server string, id LinkID, s LinkSecret, err error) {
	bad := func(what string) error { return fmt.Errorf("format: link url: %s: %w", what, coffer.ErrInvalid) }
	rest, ok := strings.CutPrefix(u, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(u, "http://"); !ok {
			return "", id, s, bad("want an https:// URL")
		}
	}
	i := strings.LastIndex(rest, "/s/")
	if i <= 0 || strings.HasPrefix(rest, "/") {
		return "", id, s, bad("missing host or /s/ path")
	}
	server = u[:len(u)-len(rest)+i]
	if strings.HasSuffix(server, "/") || strings.ContainsAny(server, "#?") ||
		strings.ContainsFunc(server, func(c rune) bool { return c <= ' ' || c >= 0x7f }) {
		return "", id, s, bad("malformed server part")
	}
	idPart, secPart, ok := strings.Cut(rest[i+3:], "#")
	if !ok {
		return "", id, s, bad("missing #secret (the part after # is the key)")
	}
	enc := base64.RawURLEncoding.Strict()
	idb, err1 := enc.DecodeString(idPart)
	sb, err2 := enc.DecodeString(secPart)
	if err1 != nil || len(idb) != len(id) || enc.EncodeToString(idb) != idPart {
		return "", id, s, bad("malformed link id")
	}
	if err2 != nil || len(sb) != len(s) || enc.EncodeToString(sb) != secPart {
		return "", id, s, bad("malformed secret")
	}
	copy(id[:], idb)
	copy(s[:], sb)
	return server, id, s, nil
}
