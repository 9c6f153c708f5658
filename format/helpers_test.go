package format

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"coffer"
)

// testRand is a deterministic random source for tests.
func testRand(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func testSigner(seed byte) ed25519.PrivateKey {
	var s [32]byte
	s[0], s[1] = seed, 0x5e
	return ed25519.NewKeyFromSeed(s[:])
}

func id16(b byte) (out [16]byte) {
	for i := range out {
		out[i] = b
	}
	return out
}

func wantErr(t *testing.T, err error, target error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error wrapping %v, got nil", target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("want error wrapping %v, got %v", target, err)
	}
	if substr != "" && !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not mention %q", err, substr)
	}
}

// mutations returns b with every bit flipped (one at a time; sampled for long inputs), b
// truncated at every length (sampled), and b with a trailing byte.
func mutations(b []byte) [][]byte {
	var out [][]byte
	step := 1
	if len(b) > 400 {
		step = len(b)/400 + 1
	}
	for i := 0; i < len(b); i += step {
		for _, bit := range []byte{0x01, 0x80} {
			m := bytes.Clone(b)
			m[i] ^= bit
			out = append(out, m)
		}
	}
	for n := 0; n < len(b); n += step {
		out = append(out, bytes.Clone(b[:n]))
	}
	out = append(out, b[:len(b)-1], append(bytes.Clone(b), 0))
	return out
}

// authOrCorrupt checks err is ErrAuth or ErrCorrupt (never nil, never another error).
func authOrCorrupt(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted a mutated object", what)
	}
	if !errors.Is(err, coffer.ErrAuth) && !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("%s: want ErrAuth or ErrCorrupt, got %v", what, err)
	}
}

// weakKDF is fast enough for unit tests.
func weakKDF() KDFParams {
	return KDFParams{Time: 1, MemoryKiB: 64, Threads: 1, Salt: id16(7)}
}

func id32(b byte) (out [32]byte) {
	for i := range out {
		out[i] = b
	}
	return out
}
