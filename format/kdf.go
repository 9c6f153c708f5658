package format

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"

	"coffer"
)

// KDFParams are the Argon2id parameters and salt for one account's password.
type KDFParams struct {
	Time      uint32   // passes, t
	MemoryKiB uint32   // m, in KiB
	Threads   uint8    // p
	Salt      [16]byte // random, chosen by the client at sign-up and on password change
}

// Sanity maxima of Check: a server offering more is refused (it could make a client burn memory).
const (
	MaxKDFTime      = 16
	MaxKDFMemoryKiB = 4 << 20 // 4 GiB
	MaxKDFThreads   = 16
)

// DefaultKDF returns fresh production parameters (t=3, m=64 MiB, p=1) with a random salt.
func DefaultKDF() KDFParams { return defaultKDF(rand.Reader) }

func defaultKDF(rng io.Reader) KDFParams {
	p := MinKDF()
	fill(rng, p.Salt[:])
	return p
}

// MinKDF returns the minimum a client accepts from a server (t>=3, m>=64 MiB, p>=1). Its salt
// is zero; only Time, MemoryKiB and Threads are compared by Check.
func MinKDF() KDFParams { return KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 1} }

// Check returns an error wrapping coffer.ErrInvalid naming the weak parameter if p is below min
// (Time, MemoryKiB, Threads), above the sanity maxima (MaxKDFTime, MaxKDFMemoryKiB,
// MaxKDFThreads), has a zero Time or Threads, or has an all-zero salt. min's salt is ignored.
func (p KDFParams) Check(min KDFParams) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("format: kdf "+format+": %w", append(args, coffer.ErrInvalid)...)
	}
	switch {
	case p.Time < min.Time || p.Time < 1:
		return bad("time %d below minimum %d", p.Time, max(min.Time, 1))
	case p.Time > MaxKDFTime:
		return bad("time %d above maximum %d", p.Time, MaxKDFTime)
	case p.MemoryKiB < min.MemoryKiB:
		return bad("memory %d KiB below minimum %d KiB", p.MemoryKiB, min.MemoryKiB)
	case p.MemoryKiB > MaxKDFMemoryKiB:
		return bad("memory %d KiB above maximum %d KiB", p.MemoryKiB, MaxKDFMemoryKiB)
	case p.Threads < min.Threads || p.Threads < 1:
		return bad("threads %d below minimum %d", p.Threads, max(min.Threads, 1))
	case p.Threads > MaxKDFThreads:
		return bad("threads %d above maximum %d", p.Threads, MaxKDFThreads)
	case isZero(p.Salt[:]):
		return bad("salt is all zero")
	}
	return nil
}

// LoginKeys are what a password (or a recovery key) yields: a signing key that proves knowledge of
// it to the server, and a wrapping key for the master-key envelope. Neither is the other.
type LoginKeys struct {
	Login ed25519.PrivateKey
	Wrap  [32]byte
}

// DerivePasswordKeys runs Argon2id once and separates the output with HKDF labels. The caller
// MUST have checked p (Check) first; it panics if Time or Threads is zero.
func DerivePasswordKeys(password []byte, p KDFParams) *LoginKeys {
	if p.Time == 0 || p.Threads == 0 {
		panic("format: DerivePasswordKeys: zero Argon2id time or threads (call KDFParams.Check first)")
	}
	pk := argon2.IDKey(password, p.Salt[:], p.Time, p.MemoryKiB, p.Threads, 32)
	return splitLoginKeys(pk, "coffer/v1 login key", "coffer/v1 password wrap")
}

func splitLoginKeys(secret []byte, loginLabel, wrapLabel string) *LoginKeys {
	seed := derive(secret, loginLabel)
	return &LoginKeys{
		Login: ed25519.NewKeyFromSeed(seed[:]),
		Wrap:  derive(secret, wrapLabel),
	}
}

// MasterKey is an account's random root secret. It never leaves the client unwrapped.
type MasterKey [32]byte

// NewMasterKey returns a random master key.
func NewMasterKey() MasterKey { return random32(rand.Reader) }

// RecoveryKey is derived from the master key, so it can be printed at any time.
type RecoveryKey [32]byte

// RecoveryKey returns HKDF(MK, "coffer/v1 recovery key").
func (mk MasterKey) RecoveryKey() RecoveryKey { return derive(mk[:], "coffer/v1 recovery key") }

// recoveryEncoding is RFC 4648 base32, standard alphabet, no padding.
func recoveryEncoding() *base32.Encoding {
	return base32.StdEncoding.WithPadding(base32.NoPadding)
}

func recoveryChecksum(rk RecoveryKey) [2]byte {
	sum := sha256.Sum256(append([]byte("coffer/v1 recovery checksum"), rk[:]...))
	return [2]byte{sum[0], sum[1]}
}

// RecoveryKeyLen is the length of RecoveryKey.String: 55 base32 characters in 11 groups of 5.
const RecoveryKeyLen = 55 + 10

// String renders the recovery key for humans: base32 of key || 2-byte checksum, in
// dash-separated groups of five characters.
func (rk RecoveryKey) String() string {
	sum := recoveryChecksum(rk)
	enc := recoveryEncoding().EncodeToString(append(rk[:], sum[:]...))
	var sb strings.Builder
	for i := 0; i < len(enc); i += 5 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(enc[i:min(i+5, len(enc))])
	}
	return sb.String()
}

// ParseRecoveryKey parses String's output (case, spaces and dashes are ignored); a bad length,
// character or checksum is an error wrapping coffer.ErrInvalid.
func ParseRecoveryKey(s string) (RecoveryKey, error) {
	var rk RecoveryKey
	clean := make([]byte, 0, 55)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		clean = append(clean, c)
		if len(clean) > 55 {
			return rk, fmt.Errorf("format: recovery key: too long (want 55 characters): %w", coffer.ErrInvalid)
		}
	}
	if len(clean) != 55 {
		return rk, fmt.Errorf("format: recovery key: %d characters, want 55: %w", len(clean), coffer.ErrInvalid)
	}
	raw, err := recoveryEncoding().DecodeString(string(clean))
	if err != nil || len(raw) != 34 || recoveryEncoding().EncodeToString(raw) != string(clean) {
		return rk, fmt.Errorf("format: recovery key: invalid character (base32 A-Z, 2-7): %w", coffer.ErrInvalid)
	}
	copy(rk[:], raw)
	sum := recoveryChecksum(rk)
	if subtle.ConstantTimeCompare(sum[:], raw[32:]) != 1 {
		return RecoveryKey{}, fmt.Errorf("format: recovery key: checksum mismatch (typo?): %w", coffer.ErrInvalid)
	}
	return rk, nil
}

// DeriveRecoveryKeys is DerivePasswordKeys for a recovery key (no Argon2id: it is already 256 bits).
func DeriveRecoveryKeys(rk RecoveryKey) *LoginKeys {
	return splitLoginKeys(rk[:], "coffer/v1 recovery login key", "coffer/v1 recovery wrap")
}
