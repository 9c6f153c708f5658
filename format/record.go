package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"coffer"
)

// Kind is a record's type.
type Kind uint8

// Record kinds. A node's kind never changes, except that its last record may be a tombstone.
const (
	KindFolder    Kind = 1
	KindFile      Kind = 2
	KindTombstone Kind = 3 // a node deleted for good: header and signature only
)

// String returns "folder", "file", "tombstone" or "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindFolder:
		return "folder"
	case KindFile:
		return "file"
	case KindTombstone:
		return "tombstone"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record layout sizes.
const (
	// RecordHeaderLen is the length of the cleartext header that starts every record.
	RecordHeaderLen = 110
	// MinBodyLen and MaxBodyLen bound the encrypted body (nonce || ciphertext || tag).
	MinBodyLen = nonceSize + tagSize
	MaxBodyLen = 16 << 20
)

// Record is one version of a node, as stored by the server. The cleartext header (kind, IDs,
// version, prev hash, author) is readable by the server; the node key and body are encrypted.
//
//	"CFR1" | kind u8 | flags u8 | node[16] | parent[16] | version u64 | prev[32] | author[32]
//	[ wrappedKey[60] | bodyLen u32 | body ]   (folders and files only)
//	sig[64]
type Record struct {
	Kind       Kind
	Node       coffer.NodeID
	Parent     coffer.NodeID
	Version    uint64
	Prev       [32]byte // Hash of the previous version; zero iff Version == 1
	Author     [32]byte // Ed25519 public key of the writer
	WrappedKey []byte   // 60 bytes; empty for tombstones
	Body       []byte   // nonce || AES-GCM ciphertext; empty for tombstones
	Sig        [64]byte
}

func (r *Record) object() string {
	return fmt.Sprintf("record %s v%d", short(r.Node[:]), r.Version)
}

// checkHeader checks the header rules shared by parsing and sealing.
func (r *Record) checkHeader() error {
	const obj = "record"
	switch {
	case r.Kind < KindFolder || r.Kind > KindTombstone:
		return corruptErr(obj, "kind", fmt.Sprintf("unknown kind %d", r.Kind))
	case r.Node.IsZero():
		return corruptErr(obj, "node", "zero")
	case r.Node == r.Parent:
		return corruptErr(obj, "parent", "equals node")
	case r.Version == 0:
		return corruptErr(obj, "version", "zero")
	case r.Version == 1 && !isZero(r.Prev[:]):
		return corruptErr(obj, "prev", "non-zero at version 1")
	case r.Version > 1 && isZero(r.Prev[:]):
		return corruptErr(obj, "prev", "zero after version 1")
	case r.Kind == KindTombstone && r.Version < 2:
		return corruptErr(obj, "version", "tombstone at version 1")
	}
	return nil
}

// Header returns the 110-byte cleartext header (the AAD of the body).
func (r *Record) Header() []byte {
	b := make([]byte, 0, RecordHeaderLen)
	b = append(b, "CFR1"...)
	b = append(b, uint8(r.Kind), 0)
	b = append(b, r.Node[:]...)
	b = append(b, r.Parent[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Version)
	b = append(b, r.Prev[:]...)
	return append(b, r.Author[:]...)
}

func (r *Record) signedPart() []byte {
	if r.Kind == KindTombstone {
		return r.Header()
	}
	b := make([]byte, 0, RecordHeaderLen+wrappedSize+4+len(r.Body)+sigSize)
	b = append(b, r.Header()...)
	b = append(b, r.WrappedKey...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Body)))
	return append(b, r.Body...)
}

// Marshal returns the record's bytes. It does not validate; ParseRecord(Marshal()) fails for an
// invalid record.
func (r *Record) Marshal() []byte { return append(r.signedPart(), r.Sig[:]...) }

// Hash is SHA-256 of Marshal().
func (r *Record) Hash() [32]byte { return sha256.Sum256(r.Marshal()) }

// ParseRecord checks structure only (no keys needed); the server uses it too. It enforces the
// header rules (known kind, flags 0, node non-zero and not its own parent, version >= 1, prev
// zero iff version 1, tombstone version >= 2), the body length range and no trailing bytes.
func ParseRecord(b []byte) (*Record, error) {
	rd := reader{b: b, obj: "record"}
	r := &Record{}
	rd.magic("CFR1")
	r.Kind = Kind(rd.u8("kind"))
	if flags := rd.u8("flags"); flags != 0 {
		rd.fail("flags", fmt.Sprintf("0x%02x, want 0", flags))
	}
	rd.copyTo(r.Node[:], "node")
	rd.copyTo(r.Parent[:], "parent")
	r.Version = rd.u64("version")
	rd.copyTo(r.Prev[:], "prev")
	rd.copyTo(r.Author[:], "author")
	if rd.err != nil {
		return nil, rd.err
	}
	if err := r.checkHeader(); err != nil {
		return nil, err
	}
	if r.Kind != KindTombstone {
		r.WrappedKey = bytes.Clone(rd.take(wrappedSize, "wrapped key"))
		n := rd.u32("body length")
		if rd.err == nil && (n < MinBodyLen || n > MaxBodyLen) {
			rd.fail("body length", fmt.Sprintf("%d outside [%d, %d]", n, MinBodyLen, MaxBodyLen))
		}
		r.Body = bytes.Clone(rd.take(int(n), "body"))
	}
	rd.copyTo(r.Sig[:], "signature")
	if err := rd.end(); err != nil {
		return nil, err
	}
	return r, nil
}

// VerifySignature checks Sig against Author: Ed25519 over "coffer/v1 record" || 0x00 || all
// bytes before the signature. It does not check who Author is.
func (r *Record) VerifySignature() error {
	if !ed25519.Verify(r.Author[:], domain("coffer/v1 record", r.signedPart()), r.Sig[:]) {
		return authErr(r.object())
	}
	return nil
}

func (r *Record) sign(signer ed25519.PrivateKey) {
	copy(r.Author[:], signer.Public().(ed25519.PublicKey))
	copy(r.Sig[:], ed25519.Sign(signer, domain("coffer/v1 record", r.signedPart())))
}

// NodeKey is a node's own random key (a folder's key wraps its children's keys).
type NodeKey [32]byte

// NewNodeKey returns a random node key.
func NewNodeKey() NodeKey { return random32(rand.Reader) }

// WrapKey wraps the node keys of a folder's children.
type WrapKey [32]byte

// WrapKey of a tree (for top-level nodes, Parent == zero): HKDF(TK, "coffer/v1 tree wrap").
func (tk TreeKey) WrapKey() WrapKey { return derive(tk[:], "coffer/v1 tree wrap") }

// WrapKey of a folder (for its children): HKDF(NK, "coffer/v1 child wrap").
func (nk NodeKey) WrapKey() WrapKey { return derive(nk[:], "coffer/v1 child wrap") }

func (nk NodeKey) bodyKey() [32]byte { return derive(nk[:], "coffer/v1 node body") }

// wrapAAD is "coffer/v1 node key" || 0x00 || kind u8 || node[16] || parent[16].
func wrapAAD(kind Kind, node, parent coffer.NodeID) []byte {
	return domain("coffer/v1 node key", []byte{uint8(kind)}, node[:], parent[:])
}

// SealRecord builds and signs a folder or file record. parent is the WrapKey of the parent folder
// (or of the tree for top-level nodes). Author is set from signer. Invalid arguments (kind,
// header rules, body rules) return an error.
func SealRecord(kind Kind, node, parentID coffer.NodeID, version uint64, prev [32]byte,
	nk NodeKey, parent WrapKey, body *Body, signer ed25519.PrivateKey) (*Record, error) {
	return sealRecord(rand.Reader, kind, node, parentID, version, prev, nk, parent, body, signer)
}

func sealRecord(rng io.Reader, kind Kind, node, parentID coffer.NodeID, version uint64, prev [32]byte,
	nk NodeKey, parent WrapKey, body *Body, signer ed25519.PrivateKey) (*Record, error) {
	r := &Record{Kind: kind, Node: node, Parent: parentID, Version: version, Prev: prev}
	if kind != KindFolder && kind != KindFile {
		return nil, invalidf("SealRecord: kind %s (use SealTombstone for tombstones)", kind)
	}
	if err := r.checkHeader(); err != nil {
		return nil, fmt.Errorf("format: SealRecord: %v: %w", err, coffer.ErrInvalid)
	}
	if body == nil {
		return nil, invalidf("SealRecord: nil body")
	}
	obj := r.object()
	if err := validateBody(body, obj); err != nil {
		return nil, fmt.Errorf("format: SealRecord: %v: %w", err, coffer.ErrInvalid)
	}
	if err := body.checkKind(kind, parentID, obj); err != nil {
		return nil, fmt.Errorf("format: SealRecord: %v: %w", err, coffer.ErrInvalid)
	}
	plain := marshalBody(body)
	if len(plain)+MinBodyLen > MaxBodyLen {
		return nil, invalidf("SealRecord: body of %d bytes over the %d-byte limit", len(plain)+MinBodyLen, MaxBodyLen)
	}
	sealRecordPlain(rng, r, nk, parent, plain, signer)
	return r, nil
}

// sealRecordPlain fills in r's author, wrapped key, body (sealing plain as is) and signature.
func sealRecordPlain(rng io.Reader, r *Record, nk NodeKey, parent WrapKey, plain []byte, signer ed25519.PrivateKey) {
	copy(r.Author[:], signer.Public().(ed25519.PublicKey))
	r.WrappedKey = sealRandom(rng, nil, parent, nk[:], wrapAAD(r.Kind, r.Node, r.Parent))
	r.Body = sealRandom(rng, nil, nk.bodyKey(), plain, r.Header())
	r.sign(signer)
}

// SealTombstone builds and signs a tombstone for node's next version. It panics if the header
// rules fail (version < 2, zero prev, zero node, node == parent): programming errors.
func SealTombstone(node, parentID coffer.NodeID, version uint64, prev [32]byte, signer ed25519.PrivateKey) *Record {
	r := &Record{Kind: KindTombstone, Node: node, Parent: parentID, Version: version, Prev: prev}
	if err := r.checkHeader(); err != nil {
		panic("format: SealTombstone: " + err.Error())
	}
	r.sign(signer)
	return r
}

// OpenKey unwraps the record's node key (ErrAuth on failure).
func (r *Record) OpenKey(parent WrapKey) (NodeKey, error) {
	if r.Kind == KindTombstone {
		return NodeKey{}, invalidf("%s: a tombstone has no key", r.object())
	}
	pt, ok := openNonced(parent, r.WrappedKey, wrapAAD(r.Kind, r.Node, r.Parent))
	if !ok || len(pt) != 32 {
		return NodeKey{}, authErr(r.object())
	}
	return NodeKey(pt), nil
}

// OpenBody decrypts and parses the body, and checks it against the kind (files have content whose
// chunk list matches size and chunk size and whose key commitment holds; folders have none; a
// role only on a top-level folder; names are valid).
func (r *Record) OpenBody(nk NodeKey) (*Body, error) {
	if r.Kind == KindTombstone {
		return nil, invalidf("%s: a tombstone has no body", r.object())
	}
	obj := r.object()
	pt, ok := openNonced(nk.bodyKey(), r.Body, r.Header())
	if !ok {
		return nil, authErr(obj)
	}
	b, err := parseBody(pt, obj)
	if err != nil {
		return nil, err
	}
	if err := b.checkKind(r.Kind, r.Parent, obj); err != nil {
		return nil, err
	}
	return b, nil
}
