// Package format implements Coffer's cryptographic format, as specified in doc/FORMAT.md.
//
// It is pure Go: no cgo, no OS calls, no network, no logging, no clock, no context. It builds for
// GOOS=js GOARCH=wasm. Parsers are strict (canonical encodings only; parse→marshal round-trips
// byte for byte) and every decryption, signature or commitment failure returns an error wrapping
// coffer.ErrAuth that names the object but not the failed check. Structural parse errors wrap
// coffer.ErrCorrupt and name the field; bad caller input wraps coffer.ErrInvalid.
//
// Randomness comes from crypto/rand in every exported function; internally it flows through an
// io.Reader so that the test-vector generator can be deterministic.
package format

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"coffer"
)

// Version is the format version this package reads and writes.
const Version = 1

// Sizes shared by several objects.
const (
	nonceSize   = 12
	tagSize     = 16
	wrappedSize = nonceSize + 32 + tagSize // nonce || AES-GCM(32-byte key)
	sigSize     = 64
)

// fill reads len(b) random bytes from rng. A failing random source is unrecoverable.
func fill(rng io.Reader, b []byte) {
	if _, err := io.ReadFull(rng, b); err != nil {
		panic("format: random source failed: " + err.Error())
	}
}

func random32(rng io.Reader) (k [32]byte) {
	fill(rng, k[:])
	return k
}

// derive returns HKDF-SHA256(secret, salt = empty, info = label) truncated to 32 bytes.
func derive(secret []byte, label string) [32]byte {
	out, err := hkdf.Key(sha256.New, secret, nil, label, 32)
	if err != nil {
		panic("format: hkdf: " + err.Error())
	}
	return [32]byte(out)
}

// newGCM returns AES-256-GCM under key.
func newGCM(key [32]byte) cipher.AEAD {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic("format: aes: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("format: gcm: " + err.Error())
	}
	return aead
}

// sealRandom returns nonce || AES-GCM(key, nonce, plain, aad) with a random nonce, appended to dst.
func sealRandom(rng io.Reader, dst []byte, key [32]byte, plain, aad []byte) []byte {
	var nonce [nonceSize]byte
	fill(rng, nonce[:])
	dst = append(dst, nonce[:]...)
	return newGCM(key).Seal(dst, nonce[:], plain, aad)
}

// openNonced opens nonce || ct under key. The caller turns a failure into authErr.
func openNonced(key [32]byte, sealed, aad []byte) ([]byte, bool) {
	if len(sealed) < nonceSize+tagSize {
		return nil, false
	}
	pt, err := newGCM(key).Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad)
	return pt, err == nil
}

// authErr is the single error of every failed AEAD open, signature or commitment check.
func authErr(object string) error {
	return fmt.Errorf("format: %s: %w", object, coffer.ErrAuth)
}

// corruptErr is a structural parse error naming the object and the field.
func corruptErr(object, field, detail string) error {
	return fmt.Errorf("format: %s: %s: %s: %w", object, field, detail, coffer.ErrCorrupt)
}

// domain returns label || 0x00 || rest..., the input of every signature and domain-separated hash.
func domain(label string, parts ...[]byte) []byte {
	n := len(label) + 1
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	out = append(out, label...)
	out = append(out, 0)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// short is the first 8 hex digits of an ID, for error messages.
func short(id []byte) string {
	if len(id) > 4 {
		id = id[:4]
	}
	return fmt.Sprintf("%x…", id)
}

// reader is a strict cursor over a fixed-layout object. The first error sticks.
type reader struct {
	b   []byte
	obj string
	err error
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = corruptErr(r.obj, field, fmt.Sprintf("truncated (need %d bytes, have %d)", n, len(r.b)))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8(field string) uint8 {
	if b := r.take(1, field); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if b := r.take(2, field); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.take(4, field); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if b := r.take(8, field); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) copyTo(dst []byte, field string) {
	if b := r.take(len(dst), field); b != nil {
		copy(dst, b)
	}
}

// magic consumes and checks a 4-byte magic.
func (r *reader) magic(want string) {
	b := r.take(4, "magic")
	if r.err == nil && string(b) != want {
		r.err = corruptErr(r.obj, "magic", fmt.Sprintf("got %q, want %q (unknown object or version)", b, want))
	}
}

// fail records a field error unless one is already recorded.
func (r *reader) fail(field, detail string) {
	if r.err == nil {
		r.err = corruptErr(r.obj, field, detail)
	}
}

// end fails on trailing bytes and returns the first error.
func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = corruptErr(r.obj, "end", fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	return r.err
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// invalidf is an error in caller-supplied input.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("format: "+format+": %w", append(args, coffer.ErrInvalid)...)
}
