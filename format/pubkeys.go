package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"coffer"
)

// PublicKeys is an account's self-signed public key record, served by the server to others:
// "CFP1" | account[16] | generation u64 | u8 nameLen | username | signing pub[32] |
// u16 kemLen | KEM pub | sig[64].
type PublicKeys struct {
	Account    coffer.AccountID
	Generation uint64
	Username   string
	Signing    ed25519.PublicKey
	KEM        []byte // HPKE MLKEM768X25519 public key
	Sig        [64]byte
}

func (p *PublicKeys) signedPart() []byte {
	if len(p.Username) > 255 || len(p.KEM) > 0xffff || len(p.Signing) != ed25519.PublicKeySize {
		panic("format: PublicKeys: username, signing key or KEM key has an invalid length")
	}
	b := make([]byte, 0, 64+len(p.Username)+len(p.KEM)+sigSize)
	b = append(b, "CFP1"...)
	b = append(b, p.Account[:]...)
	b = binary.BigEndian.AppendUint64(b, p.Generation)
	b = append(b, uint8(len(p.Username)))
	b = append(b, p.Username...)
	b = append(b, p.Signing...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.KEM)))
	return append(b, p.KEM...)
}

// Marshal returns the record's bytes. It panics on invalid field lengths.
func (p *PublicKeys) Marshal() []byte { return append(p.signedPart(), p.Sig[:]...) }

// ParsePublicKeys parses a record and verifies its self-signature (ErrAuth), that the username
// is valid, the generation non-zero and the KEM key a valid MLKEM768X25519 public key.
func ParsePublicKeys(b []byte) (*PublicKeys, error) {
	r := reader{b: b, obj: "public keys"}
	p := &PublicKeys{}
	r.magic("CFP1")
	r.copyTo(p.Account[:], "account")
	p.Generation = r.u64("generation")
	p.Username = string(r.take(int(r.u8("username length")), "username"))
	p.Signing = bytes.Clone(r.take(ed25519.PublicKeySize, "signing key"))
	p.KEM = bytes.Clone(r.take(int(r.u16("kem length")), "kem key"))
	r.copyTo(p.Sig[:], "signature")
	if err := r.end(); err != nil {
		return nil, err
	}
	if p.Generation == 0 {
		return nil, corruptErr(r.obj, "generation", "zero")
	}
	if err := ValidateUsername(p.Username); err != nil {
		return nil, corruptErr(r.obj, "username", "invalid")
	}
	if _, err := hpke.MLKEM768X25519().NewPublicKey(p.KEM); err != nil {
		return nil, corruptErr(r.obj, "kem key", "not an MLKEM768X25519 public key")
	}
	if !ed25519.Verify(p.Signing, domain("coffer/v1 public keys", b[:len(b)-sigSize]), p.Sig[:]) {
		return nil, authErr("public keys of " + p.Username)
	}
	return p, nil
}

// Fingerprint is the human-comparable safety number of the record's keys: SHA-256("coffer/v1
// fingerprint" || 0x00 || signing || KEM) as 8 space-separated groups of 5 decimal digits.
func (p *PublicKeys) Fingerprint() string {
	sum := sha256.Sum256(domain("coffer/v1 fingerprint", p.Signing, p.KEM))
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = fmt.Sprintf("%05d", binary.BigEndian.Uint32(sum[4*i:])%100000)
	}
	return strings.Join(groups, " ")
}

// KEMFingerprint is SHA-256 of the KEM public key (the recipient binding of invites).
func (p *PublicKeys) KEMFingerprint() [32]byte { return sha256.Sum256(p.KEM) }

// Matches checks that p is exactly the public half of b (account, generation, signing and KEM
// keys): a client runs it on its own record as served by the server. A mismatch is ErrAuth.
func (p *PublicKeys) Matches(b *Bundle) error {
	k, err := b.KEMKey()
	if err != nil {
		return err
	}
	signer := b.SigningKey()
	if p.Account != b.Account || p.Generation != b.Generation ||
		!bytes.Equal(p.Signing, signer.Public().(ed25519.PublicKey)) || !bytes.Equal(p.KEM, k.PublicKey().Bytes()) {
		return authErr("public keys of " + p.Username)
	}
	return nil
}
