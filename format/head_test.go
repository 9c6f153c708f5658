package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"coffer"
)

func testHeads(t *testing.T, n int) []*Head {
	t.Helper()
	signer := testSigner(3)
	var heads []*Head
	var prev *Head
	for v := 1; v <= n; v++ {
		h := &Head{Tree: coffer.TreeID(id16(0x7e)), Version: uint64(v), StateRoot: id32(byte(v)), OpsHash: id32(byte(v + 100)), Time: 1700000000000 + int64(v)}
		if prev != nil {
			h.Prev = prev.Hash()
		}
		h.Sign(signer)
		if err := CheckSuccessor(prev, h); err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
		prev = h
	}
	return heads
}

func TestHead(t *testing.T) {
	hs := testHeads(t, 3)
	for _, h := range hs {
		raw := h.Marshal()
		if len(raw) != HeadLen {
			t.Fatalf("length %d", len(raw))
		}
		got, err := ParseHead(raw)
		if err != nil || *got != *h || !bytes.Equal(got.Marshal(), raw) || got.Hash() != sha256.Sum256(raw) {
			t.Fatalf("round trip: %v", err)
		}
		if err := got.VerifySignature(); err != nil {
			t.Fatal(err)
		}
		if [32]byte(testSigner(3).Public().(ed25519.PublicKey)) != got.Writer {
			t.Fatal("writer")
		}
		for _, m := range mutations(raw) {
			h, err := ParseHead(m)
			if err == nil {
				err = h.VerifySignature()
			}
			authOrCorrupt(t, err, "head")
		}
	}
	raw := hs[1].Marshal()
	put := func(off int, v []byte) []byte { m := bytes.Clone(raw); copy(m[off:], v); return m }
	for want, m := range map[string][]byte{
		"magic":       put(0, []byte("CFH2")),
		"version":     put(20, make([]byte, 8)),
		"zero after":  put(28, make([]byte, 32)),
		"non-zero at": hs[0].Marshal()[:20:20],
		"trailing":    append(bytes.Clone(raw), 0),
		"signature":   raw[:HeadLen-1],
		"truncated":   raw[:10],
	} {
		if want == "non-zero at" {
			m = append(bytes.Clone(m), binary.BigEndian.AppendUint64(nil, 1)...)
			m = append(m, raw[28:]...)
		}
		_, err := ParseHead(m)
		wantErr(t, err, coffer.ErrCorrupt, want)
	}
}

func TestCheckSuccessor(t *testing.T) {
	hs := testHeads(t, 3)
	wantErr(t, CheckSuccessor(nil, hs[1]), coffer.ErrAuth, "first head")
	wantErr(t, CheckSuccessor(hs[0], hs[2]), coffer.ErrAuth, "does not follow version 1")
	wantErr(t, CheckSuccessor(hs[1], hs[1]), coffer.ErrAuth, "")
	fork := *hs[1]
	fork.StateRoot[0] ^= 1
	fork.Sign(testSigner(3))
	wantErr(t, CheckSuccessor(&fork, hs[2]), coffer.ErrAuth, "prev is not the hash")
	other := *hs[1]
	other.Tree[0] ^= 1
	wantErr(t, CheckSuccessor(hs[0], &other), coffer.ErrAuth, "another tree")
}

func TestCheckNotRollback(t *testing.T) {
	hs := testHeads(t, 3)
	if err := CheckNotRollback(nil, hs[0]); err != nil {
		t.Fatal(err)
	}
	if err := CheckNotRollback(hs[1], hs[1]); err != nil {
		t.Fatal(err)
	}
	if err := CheckNotRollback(hs[1], hs[2]); err != nil {
		t.Fatal(err)
	}
	wantErr(t, CheckNotRollback(hs[2], hs[0]), coffer.ErrRollback, "older than seen version 3")
	fork := *hs[1]
	fork.Time++
	fork.Sign(testSigner(3))
	wantErr(t, CheckNotRollback(hs[1], &fork), coffer.ErrRollback, "differs")
	other := *hs[1]
	other.Tree[0] ^= 1
	wantErr(t, CheckNotRollback(hs[1], &other), coffer.ErrInvalid, "")
}
