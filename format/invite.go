package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"coffer"
)

// Invite layout.
const (
	inviteHeaderLen = 89 // everything before encLen
	// InviteSealedLen is the HPKE ciphertext length (enc || sealed tree key) of the v1 suite.
	InviteSealedLen = 1120 + 32 + tagSize
	// InviteLen is the length of an invite.
	InviteLen = inviteHeaderLen + 2 + InviteSealedLen + 32 + sigSize
)

// Invite hands a tree key to another account:
// "CFI1" | tree[16] | epoch u32 | role u8 | sender[16] | recipient[16] | recipientKEM[32] |
// u16 encLen | HPKE ciphertext | sender signing pub[32] | sig[64].
type Invite struct {
	Tree         coffer.TreeID
	Epoch        uint32 // tree-key generation, >= 1
	Role         uint8  // ShareRead or ShareWrite
	Sender       coffer.AccountID
	Recipient    coffer.AccountID
	RecipientKEM [32]byte // SHA-256 of the recipient's KEM public key
	Sealed       []byte   // HPKE enc || ciphertext of the tree key
	SenderKey    [32]byte // the sender's identity (signing) public key
	Sig          [64]byte
}

func (inv *Invite) object() string { return "invite for tree " + short(inv.Tree[:]) }

func (inv *Invite) header() []byte {
	b := make([]byte, 0, InviteLen)
	b = append(b, "CFI1"...)
	b = append(b, inv.Tree[:]...)
	b = binary.BigEndian.AppendUint32(b, inv.Epoch)
	b = append(b, inv.Role)
	b = append(b, inv.Sender[:]...)
	b = append(b, inv.Recipient[:]...)
	return append(b, inv.RecipientKEM[:]...)
}

func (inv *Invite) signedPart() []byte {
	b := inv.header()
	b = binary.BigEndian.AppendUint16(b, uint16(len(inv.Sealed)))
	b = append(b, inv.Sealed...)
	return append(b, inv.SenderKey[:]...)
}

// Marshal returns the invite's bytes.
func (inv *Invite) Marshal() []byte { return append(inv.signedPart(), inv.Sig[:]...) }

func (inv *Invite) hpkeInfo() []byte { return domain("coffer/v1 invite", inv.header()) }

func inviteSuite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.AES256GCM() }

// SealInvite encrypts tk to recipient's KEM key and signs the invite with sender's identity key.
// recipient must be a verified public-key record (ParsePublicKeys, fingerprint checked).
func SealInvite(tree coffer.TreeID, epoch uint32, role uint8, tk TreeKey, sender *Bundle, recipient *PublicKeys) (*Invite, error) {
	inv := &Invite{Tree: tree, Epoch: epoch, Role: role, Sender: sender.Account, Recipient: recipient.Account,
		RecipientKEM: recipient.KEMFingerprint()}
	if err := inv.check(); err != nil {
		return nil, fmt.Errorf("format: SealInvite: %v: %w", err, coffer.ErrInvalid)
	}
	pub, err := hpke.MLKEM768X25519().NewPublicKey(recipient.KEM)
	if err != nil {
		return nil, invalidf("SealInvite: recipient KEM key: %v", err)
	}
	kdf, aead := inviteSuite()
	inv.Sealed, err = hpke.Seal(pub, kdf, aead, inv.hpkeInfo(), tk[:])
	if err != nil {
		return nil, fmt.Errorf("format: SealInvite: hpke: %w", err)
	}
	inv.sign(sender.SigningKey())
	return inv, nil
}

func (inv *Invite) sign(signer ed25519.PrivateKey) {
	copy(inv.SenderKey[:], signer.Public().(ed25519.PublicKey))
	copy(inv.Sig[:], ed25519.Sign(signer, domain("coffer/v1 invite", inv.signedPart())))
}

func (inv *Invite) check() error {
	switch {
	case inv.Epoch == 0:
		return corruptErr("invite", "epoch", "zero")
	case inv.Role != ShareRead && inv.Role != ShareWrite:
		return corruptErr("invite", "role", fmt.Sprintf("unknown role %d", inv.Role))
	case inv.Sender == inv.Recipient:
		return corruptErr("invite", "recipient", "equals sender")
	}
	return nil
}

// ParseInvite parses an invite and verifies its signature against the embedded sender key
// (ErrAuth). The recipient must still check SenderKey against the sender's public keys (Open).
func ParseInvite(b []byte) (*Invite, error) {
	r := reader{b: b, obj: "invite"}
	inv := &Invite{}
	r.magic("CFI1")
	r.copyTo(inv.Tree[:], "tree")
	inv.Epoch = r.u32("epoch")
	inv.Role = r.u8("role")
	r.copyTo(inv.Sender[:], "sender")
	r.copyTo(inv.Recipient[:], "recipient")
	r.copyTo(inv.RecipientKEM[:], "recipient kem fingerprint")
	n := r.u16("sealed length")
	if r.err == nil && n != InviteSealedLen {
		r.fail("sealed length", fmt.Sprintf("%d, want %d", n, InviteSealedLen))
	}
	inv.Sealed = bytes.Clone(r.take(int(n), "sealed tree key"))
	r.copyTo(inv.SenderKey[:], "sender key")
	r.copyTo(inv.Sig[:], "signature")
	if err := r.end(); err != nil {
		return nil, err
	}
	if err := inv.check(); err != nil {
		return nil, err
	}
	if !ed25519.Verify(inv.SenderKey[:], domain("coffer/v1 invite", inv.signedPart()), inv.Sig[:]) {
		return nil, authErr(inv.object())
	}
	return inv, nil
}

// Open checks that the invite is addressed to the bundle's account and KEM key and was signed by
// sender (a verified public-key record), then decrypts the tree key. Every failure is ErrAuth.
func (inv *Invite) Open(recipient *Bundle, sender *PublicKeys) (TreeKey, error) {
	priv, err := recipient.KEMKey()
	if err != nil {
		return TreeKey{}, err
	}
	if inv.Recipient != recipient.Account || inv.RecipientKEM != sha256.Sum256(priv.PublicKey().Bytes()) ||
		inv.Sender != sender.Account || !bytes.Equal(inv.SenderKey[:], sender.Signing) {
		return TreeKey{}, authErr(inv.object())
	}
	if !ed25519.Verify(inv.SenderKey[:], domain("coffer/v1 invite", inv.signedPart()), inv.Sig[:]) {
		return TreeKey{}, authErr(inv.object())
	}
	kdf, aead := inviteSuite()
	pt, err := hpke.Open(priv, kdf, aead, inv.hpkeInfo(), inv.Sealed)
	if err != nil || len(pt) != 32 {
		return TreeKey{}, authErr(inv.object())
	}
	return TreeKey(pt), nil
}
