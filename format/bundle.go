package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"coffer"
)

// TreeKey is the secret of a tree: top-level node keys are wrapped under a key derived from it.
type TreeKey [32]byte

// NewTreeKey returns a random tree key (for a new shared tree or a key rotation).
func NewTreeKey() TreeKey { return random32(rand.Reader) }

// Share roles (ShareKey.Role and invites).
const (
	ShareRead  uint8 = 1
	ShareWrite uint8 = 2
)

// ShareKey is the key of a shared tree the account holds: a tree it was invited to (Role as in
// the invite) or one it owns (Role ShareWrite). Owner and OwnerKey are the tree's owner as the
// account trusts it (the verified invite's sender, or the account itself): a client checks every
// roster of the tree against them, never against owner data the server serves.
type ShareKey struct {
	Tree     coffer.TreeID
	Key      TreeKey
	Role     uint8            // ShareRead or ShareWrite
	Epoch    uint32           // the key's generation (>= 1), as in the roster and the invite
	Owner    coffer.AccountID // the tree's owner (the bundle's account for a tree it owns); non-zero
	OwnerKey [32]byte         // the owner's identity (Ed25519) public key; non-zero
}

// shareEntryLen is the length of one bundle share entry:
// tree[16] | key[32] | role u8 | epoch u32 | owner account[16] | owner signing key[32].
const shareEntryLen = 16 + 32 + 1 + 4 + 16 + 32

// Bundle is the account's private key material, AEAD-sealed under a key derived from the master key.
type Bundle struct {
	Account     coffer.AccountID
	Generation  uint64
	SigningSeed [32]byte // Ed25519 seed of the identity key
	KEMSeed     [32]byte // HPKE MLKEM768X25519 DeriveKeyPair input
	Tree        coffer.TreeID
	TreeKey     TreeKey
	Shares      []ShareKey // sorted by Tree, unique
}

const bundleHeaderLen = 28 // "CFB1" | account[16] | generation u64

// Bundle TLV tags.
const (
	bundleTagSigning = 1
	bundleTagKEM     = 2
	bundleTagTree    = 3
	bundleTagShares  = 4
)

// NewBundle returns generation 1 with fresh keys and a fresh account tree.
func NewBundle(acct coffer.AccountID) *Bundle { return newBundle(rand.Reader, acct) }

func newBundle(rng io.Reader, acct coffer.AccountID) *Bundle {
	b := &Bundle{Account: acct, Generation: 1}
	fill(rng, b.SigningSeed[:])
	fill(rng, b.KEMSeed[:])
	fill(rng, b.Tree[:])
	fill(rng, b.TreeKey[:])
	return b
}

// Seal encrypts the bundle under mk: "CFB1" | account[16] | generation u64 | nonce[12] | ct,
// AAD = the 28-byte header. It panics if the bundle breaks a rule ParseBundle enforces
// (generation 0, unsorted or duplicate shares, unknown role, zero epoch, zero owner or owner key,
// an entry owned by the account with another key than its own or a read role).
func (b *Bundle) Seal(mk MasterKey) []byte { return b.seal(rand.Reader, mk) }

func (b *Bundle) seal(rng io.Reader, mk MasterKey) []byte {
	if err := b.validate(); err != nil {
		panic("format: Bundle.Seal: " + err.Error())
	}
	return sealBundlePlain(rng, b.Account, b.Generation, mk, b.marshalPlain())
}

// sealBundlePlain seals plain as a bundle's plaintext, as is.
func sealBundlePlain(rng io.Reader, acct coffer.AccountID, gen uint64, mk MasterKey, plain []byte) []byte {
	hdr := make([]byte, 0, bundleHeaderLen+nonceSize+len(plain)+tagSize)
	hdr = append(hdr, "CFB1"...)
	hdr = append(hdr, acct[:]...)
	hdr = binary.BigEndian.AppendUint64(hdr, gen)
	return sealRandom(rng, hdr, derive(mk[:], "coffer/v1 key bundle"), plain, hdr)
}

func (b *Bundle) validate() error {
	if b.Generation == 0 {
		return corruptErr("bundle", "generation", "zero")
	}
	var own *[32]byte // derived once, only if an entry names the account itself
	for i, s := range b.Shares {
		if s.Owner == (coffer.AccountID{}) || s.OwnerKey == ([32]byte{}) {
			return corruptErr("bundle", "shares", fmt.Sprintf("share %d: zero owner or owner key", i))
		}
		if s.Owner == b.Account && own == nil {
			k := b.SigningPublic()
			own = &k
		}
		if s.Owner == b.Account && (s.OwnerKey != *own || s.Role != ShareWrite) {
			return corruptErr("bundle", "shares", fmt.Sprintf("share %d: owned by the account but not with its own key and role write", i))
		}
		if s.Role != ShareRead && s.Role != ShareWrite {
			return corruptErr("bundle", "shares", fmt.Sprintf("share %d: unknown role %d", i, s.Role))
		}
		if s.Epoch == 0 {
			return corruptErr("bundle", "shares", fmt.Sprintf("share %d: epoch zero", i))
		}
		if i > 0 && bytes.Compare(b.Shares[i-1].Tree[:], s.Tree[:]) >= 0 {
			return corruptErr("bundle", "shares", "not sorted by tree or duplicate tree")
		}
	}
	return nil
}

// marshalPlain returns the TLV plaintext.
func (b *Bundle) marshalPlain() []byte {
	out := appendTLV(nil, bundleTagSigning, b.SigningSeed[:])
	out = appendTLV(out, bundleTagKEM, b.KEMSeed[:])
	out = appendTLV(out, bundleTagTree, append(append([]byte{}, b.Tree[:]...), b.TreeKey[:]...))
	if len(b.Shares) > 0 {
		v := make([]byte, 0, shareEntryLen*len(b.Shares))
		for _, s := range b.Shares {
			v = append(v, s.Tree[:]...)
			v = append(v, s.Key[:]...)
			v = append(v, s.Role)
			v = binary.BigEndian.AppendUint32(v, s.Epoch)
			v = append(v, s.Owner[:]...)
			v = append(v, s.OwnerKey[:]...)
		}
		out = appendTLV(out, bundleTagShares, v)
	}
	return out
}

// parseBundlePlain parses the TLV plaintext into b (Account and Generation already set).
func parseBundlePlain(b *Bundle, pt []byte) error {
	const obj = "bundle"
	items, err := parseTLV(pt, obj, bundleTagShares)
	if err != nil {
		return err
	}
	seen := map[uint8]bool{}
	for _, it := range items {
		seen[it.tag] = true
		switch it.tag {
		case bundleTagSigning, bundleTagKEM:
			if len(it.value) != 32 {
				return corruptErr(obj, fmt.Sprintf("tlv tag %d", it.tag), fmt.Sprintf("length %d, want 32", len(it.value)))
			}
			if it.tag == bundleTagSigning {
				copy(b.SigningSeed[:], it.value)
			} else {
				copy(b.KEMSeed[:], it.value)
			}
		case bundleTagTree:
			if len(it.value) != 48 {
				return corruptErr(obj, "account tree", fmt.Sprintf("length %d, want 48", len(it.value)))
			}
			copy(b.Tree[:], it.value[:16])
			copy(b.TreeKey[:], it.value[16:])
		case bundleTagShares:
			if len(it.value) == 0 || len(it.value)%shareEntryLen != 0 {
				return corruptErr(obj, "shares", fmt.Sprintf("length %d is not a positive multiple of %d", len(it.value), shareEntryLen))
			}
			for v := it.value; len(v) > 0; v = v[shareEntryLen:] {
				var s ShareKey
				copy(s.Tree[:], v[:16])
				copy(s.Key[:], v[16:48])
				s.Role = v[48]
				s.Epoch = binary.BigEndian.Uint32(v[49:53])
				copy(s.Owner[:], v[53:69])
				copy(s.OwnerKey[:], v[69:101])
				b.Shares = append(b.Shares, s)
			}
		}
	}
	for _, tag := range []uint8{bundleTagSigning, bundleTagKEM, bundleTagTree} {
		if !seen[tag] {
			return corruptErr(obj, fmt.Sprintf("tlv tag %d", tag), "required tag missing")
		}
	}
	return b.validate()
}

// OpenBundle decrypts and parses a sealed bundle, refusing one for another account (ErrAuth).
func OpenBundle(sealed []byte, mk MasterKey, acct coffer.AccountID) (*Bundle, error) {
	r := reader{b: sealed, obj: "bundle"}
	b := &Bundle{}
	r.magic("CFB1")
	r.copyTo(b.Account[:], "account")
	b.Generation = r.u64("generation")
	r.take(nonceSize+tagSize, "ciphertext")
	if r.err != nil {
		return nil, r.err
	}
	if b.Generation == 0 {
		return nil, corruptErr("bundle", "generation", "zero")
	}
	if b.Account != acct {
		return nil, authErr("bundle")
	}
	pt, ok := openNonced(derive(mk[:], "coffer/v1 key bundle"), sealed[bundleHeaderLen:], sealed[:bundleHeaderLen])
	if !ok {
		return nil, authErr("bundle")
	}
	if err := parseBundlePlain(b, pt); err != nil {
		return nil, err
	}
	return b, nil
}

// SigningKey returns the identity signing key.
func (b *Bundle) SigningKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(b.SigningSeed[:]) }

// SigningPublic returns the identity (Ed25519) public key.
func (b *Bundle) SigningPublic() [32]byte {
	return [32]byte(b.SigningKey().Public().(ed25519.PublicKey))
}

// ShareOf returns the share entry of tree and whether the bundle holds one.
func (b *Bundle) ShareOf(tree coffer.TreeID) (ShareKey, bool) {
	for _, s := range b.Shares {
		if s.Tree == tree {
			return s, true
		}
	}
	return ShareKey{}, false
}

// KEMKey returns the HPKE MLKEM768X25519 private key derived from KEMSeed.
func (b *Bundle) KEMKey() (hpke.PrivateKey, error) {
	k, err := hpke.MLKEM768X25519().DeriveKeyPair(b.KEMSeed[:])
	if err != nil {
		return nil, fmt.Errorf("format: bundle: derive KEM key: %w", err)
	}
	return k, nil
}

// PublicKeys returns the self-signed public key record for this bundle. It panics if username
// is longer than 255 bytes (callers validate it with ValidateUsername).
func (b *Bundle) PublicKeys(username string) *PublicKeys {
	k, err := b.KEMKey()
	if err != nil {
		panic(err.Error())
	}
	signer := b.SigningKey()
	p := &PublicKeys{
		Account:    b.Account,
		Generation: b.Generation,
		Username:   username,
		Signing:    signer.Public().(ed25519.PublicKey),
		KEM:        k.PublicKey().Bytes(),
	}
	msg := p.signedPart()
	copy(p.Sig[:], ed25519.Sign(signer, domain("coffer/v1 public keys", msg)))
	return p
}
