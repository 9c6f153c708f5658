package format

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"coffer"
)

// Envelope purposes.
const (
	PurposePassword uint8 = 1
	PurposeRecovery uint8 = 2
)

// Master-key envelope layout sizes.
const (
	envelopeHeaderLen = 46
	// EnvelopeLen is the length of a master-key envelope.
	EnvelopeLen = envelopeHeaderLen + wrappedSize
)

// MasterKeyEnvelope is a parsed master-key envelope:
// "CFK1" | purpose u8 | account[16] | t u32 | m u32 | p u8 | salt[16] | nonce[12] | ct[48].
type MasterKeyEnvelope struct {
	Purpose uint8
	Account coffer.AccountID
	KDF     KDFParams // zero for PurposeRecovery
	Wrapped [wrappedSize]byte
}

// SealMasterKey wraps mk for account acct. For PurposePassword, kdf is bound into the AAD; for
// PurposeRecovery it must be the zero value. It panics on an unknown purpose or a non-zero kdf
// for PurposeRecovery (programming errors).
func SealMasterKey(mk MasterKey, purpose uint8, acct coffer.AccountID, kdf KDFParams, wrap [32]byte) []byte {
	return sealMasterKey(rand.Reader, mk, purpose, acct, kdf, wrap)
}

func sealMasterKey(rng io.Reader, mk MasterKey, purpose uint8, acct coffer.AccountID, kdf KDFParams, wrap [32]byte) []byte {
	switch purpose {
	case PurposePassword:
	case PurposeRecovery:
		if kdf != (KDFParams{}) {
			panic("format: SealMasterKey: recovery envelope with non-zero KDF parameters")
		}
	default:
		panic(fmt.Sprintf("format: SealMasterKey: unknown purpose %d", purpose))
	}
	e := MasterKeyEnvelope{Purpose: purpose, Account: acct, KDF: kdf}
	hdr := e.header()
	out := sealRandom(rng, hdr, wrap, mk[:], hdr)
	return out
}

func (e *MasterKeyEnvelope) header() []byte {
	b := make([]byte, 0, EnvelopeLen)
	b = append(b, "CFK1"...)
	b = append(b, e.Purpose)
	b = append(b, e.Account[:]...)
	b = binary.BigEndian.AppendUint32(b, e.KDF.Time)
	b = binary.BigEndian.AppendUint32(b, e.KDF.MemoryKiB)
	b = append(b, e.KDF.Threads)
	b = append(b, e.KDF.Salt[:]...)
	return b
}

// Marshal returns the 106-byte envelope.
func (e *MasterKeyEnvelope) Marshal() []byte { return append(e.header(), e.Wrapped[:]...) }

// ParseMasterKeyEnvelope parses an envelope's structure (no key needed). Purpose must be known;
// a recovery envelope has all-zero KDF fields; a password envelope has non-zero t, m, p and salt.
// It does not apply KDF minimums: the client calls KDFParams.Check.
func ParseMasterKeyEnvelope(b []byte) (*MasterKeyEnvelope, error) {
	r := reader{b: b, obj: "master key envelope"}
	var e MasterKeyEnvelope
	r.magic("CFK1")
	e.Purpose = r.u8("purpose")
	r.copyTo(e.Account[:], "account")
	e.KDF.Time = r.u32("kdf time")
	e.KDF.MemoryKiB = r.u32("kdf memory")
	e.KDF.Threads = r.u8("kdf threads")
	r.copyTo(e.KDF.Salt[:], "kdf salt")
	r.copyTo(e.Wrapped[:], "wrapped key")
	if err := r.end(); err != nil {
		return nil, err
	}
	switch e.Purpose {
	case PurposePassword:
		switch {
		case e.KDF.Time == 0:
			r.fail("kdf time", "zero")
		case e.KDF.MemoryKiB == 0:
			r.fail("kdf memory", "zero")
		case e.KDF.Threads == 0:
			r.fail("kdf threads", "zero")
		case isZero(e.KDF.Salt[:]):
			r.fail("kdf salt", "all zero")
		}
	case PurposeRecovery:
		if e.KDF != (KDFParams{}) {
			r.fail("kdf", "non-zero in a recovery envelope")
		}
	default:
		r.fail("purpose", fmt.Sprintf("unknown purpose %d", e.Purpose))
	}
	if r.err != nil {
		return nil, r.err
	}
	return &e, nil
}

// EnvelopeKDF returns the KDF parameters stored in a password envelope (for password change
// and for checking what a server serves against the prelogin answer).
func EnvelopeKDF(envelope []byte) (KDFParams, error) {
	e, err := ParseMasterKeyEnvelope(envelope)
	if err != nil {
		return KDFParams{}, err
	}
	if e.Purpose != PurposePassword {
		return KDFParams{}, corruptErr("master key envelope", "purpose", "not a password envelope")
	}
	return e.KDF, nil
}

// OpenMasterKey parses and unwraps an envelope. It fails unless the envelope is for acct and
// purpose; every check after parsing fails with coffer.ErrAuth.
func OpenMasterKey(envelope []byte, purpose uint8, acct coffer.AccountID, wrap [32]byte) (MasterKey, error) {
	e, err := ParseMasterKeyEnvelope(envelope)
	if err != nil {
		return MasterKey{}, err
	}
	if e.Purpose != purpose || e.Account != acct {
		return MasterKey{}, authErr("master key envelope")
	}
	pt, ok := openNonced(wrap, e.Wrapped[:], envelope[:envelopeHeaderLen])
	if !ok || len(pt) != 32 {
		return MasterKey{}, authErr("master key envelope")
	}
	return MasterKey(pt), nil
}

// Login proof purposes.
const (
	ProofLogin    uint8 = 1
	ProofRecover  uint8 = 2
	ProofPassword uint8 = 3 // re-authentication before a password change
)

// LoginMessage is the byte string the client signs with LoginKeys.Login to answer a challenge:
// "coffer/v1 login proof" || 0x00 || purpose u8 || account[16] || u16 len || username || challenge[32].
// It panics if username is longer than 65535 bytes (ValidateUsername allows 64).
func LoginMessage(acct coffer.AccountID, username string, challenge [32]byte, purpose uint8) []byte {
	if len(username) > 0xffff {
		panic("format: LoginMessage: username too long")
	}
	b := domain("coffer/v1 login proof")
	b = append(b, purpose)
	b = append(b, acct[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(username)))
	b = append(b, username...)
	return append(b, challenge[:]...)
}

// ValidateUsername accepts 1 to 64 bytes of [a-z0-9._-] whose first character is a letter or a
// digit; otherwise it returns an error wrapping coffer.ErrInvalid.
func ValidateUsername(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("format: username: length %d, want 1 to 64: %w", len(name), coffer.ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return fmt.Errorf("format: username: invalid character %q at %d (allowed a-z 0-9 . _ -, starting with a letter or digit): %w", c, i, coffer.ErrInvalid)
		}
	}
	return nil
}
