package format

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"coffer"
)

// HeadLen is the length of a marshalled head.
const HeadLen = 228

// Head is the signed, hash-chained head of a tree:
// "CFH1" | tree[16] | version u64 | prev[32] | stateRoot[32] | opsHash[32] | time i64 |
// writer[32] | sig[64].
type Head struct {
	Tree      coffer.TreeID
	Version   uint64
	Prev      [32]byte // Hash of the previous head; zero iff Version == 1
	StateRoot [32]byte
	OpsHash   [32]byte
	Time      int64 // Unix milliseconds
	Writer    [32]byte
	Sig       [64]byte
}

func (h *Head) object() string { return fmt.Sprintf("head %s v%d", short(h.Tree[:]), h.Version) }

func (h *Head) signedPart() []byte {
	b := make([]byte, 0, HeadLen)
	b = append(b, "CFH1"...)
	b = append(b, h.Tree[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Version)
	b = append(b, h.Prev[:]...)
	b = append(b, h.StateRoot[:]...)
	b = append(b, h.OpsHash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time))
	return append(b, h.Writer[:]...)
}

// ParseHead parses a head's structure: version >= 1, prev zero iff version == 1. It does not
// verify the signature (VerifySignature).
func ParseHead(b []byte) (*Head, error) {
	r := reader{b: b, obj: "head"}
	h := &Head{}
	r.magic("CFH1")
	r.copyTo(h.Tree[:], "tree")
	h.Version = r.u64("version")
	r.copyTo(h.Prev[:], "prev")
	r.copyTo(h.StateRoot[:], "state root")
	r.copyTo(h.OpsHash[:], "ops hash")
	h.Time = int64(r.u64("time"))
	r.copyTo(h.Writer[:], "writer")
	r.copyTo(h.Sig[:], "signature")
	if err := r.end(); err != nil {
		return nil, err
	}
	if err := h.checkChainFields(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Head) checkChainFields() error {
	switch {
	case h.Version == 0:
		return corruptErr("head", "version", "zero")
	case h.Version == 1 && !isZero(h.Prev[:]):
		return corruptErr("head", "prev", "non-zero at version 1")
	case h.Version > 1 && isZero(h.Prev[:]):
		return corruptErr("head", "prev", "zero after version 1")
	}
	return nil
}

// Marshal returns the 228-byte head.
func (h *Head) Marshal() []byte { return append(h.signedPart(), h.Sig[:]...) }

// Hash is SHA-256 of Marshal().
func (h *Head) Hash() [32]byte { return sha256.Sum256(h.Marshal()) }

// Sign sets Writer and Sig: Sig = Ed25519(signer, "coffer/v1 head" || 0x00 || preceding bytes).
func (h *Head) Sign(signer ed25519.PrivateKey) {
	copy(h.Writer[:], signer.Public().(ed25519.PublicKey))
	copy(h.Sig[:], ed25519.Sign(signer, domain("coffer/v1 head", h.signedPart())))
}

// VerifySignature checks Sig against Writer (ErrAuth). It does not check who Writer is: the
// caller checks the writer is authorised for the tree.
func (h *Head) VerifySignature() error {
	if !ed25519.Verify(h.Writer[:], domain("coffer/v1 head", h.signedPart()), h.Sig[:]) {
		return authErr(h.object())
	}
	return nil
}

// CheckSuccessor checks that next directly extends prev: same tree, version+1 and prev hash.
// prev == nil means next must be version 1 with a zero Prev. Failures wrap coffer.ErrAuth; the
// message says which rule failed (all inputs are public, so this is no oracle).
func CheckSuccessor(prev, next *Head) error {
	if prev == nil {
		if next.Version != 1 || !isZero(next.Prev[:]) {
			return fmt.Errorf("format: %s: not a first head (want version 1, zero prev): %w", next.object(), coffer.ErrAuth)
		}
		return nil
	}
	switch {
	case next.Tree != prev.Tree:
		return fmt.Errorf("format: %s: extends head of another tree %s: %w", next.object(), short(prev.Tree[:]), coffer.ErrAuth)
	case next.Version != prev.Version+1:
		return fmt.Errorf("format: %s: does not follow version %d: %w", next.object(), prev.Version, coffer.ErrAuth)
	case next.Prev != prev.Hash():
		return fmt.Errorf("format: %s: prev is not the hash of version %d: %w", next.object(), prev.Version, coffer.ErrAuth)
	}
	return nil
}

// CheckNotRollback refuses got if it is older than seen (a lower version) or forks it (the same
// version with a different hash); the error wraps coffer.ErrRollback. seen == nil accepts any
// head. Heads of different trees are an ErrInvalid caller bug.
func CheckNotRollback(seen, got *Head) error {
	if seen == nil {
		return nil
	}
	if seen.Tree != got.Tree {
		return invalidf("head %s: compared with a head of tree %s", short(got.Tree[:]), short(seen.Tree[:]))
	}
	switch {
	case got.Version < seen.Version:
		return fmt.Errorf("format: %s: older than seen version %d: %w", got.object(), seen.Version, coffer.ErrRollback)
	case got.Version == seen.Version && got.Hash() != seen.Hash():
		return fmt.Errorf("format: %s: differs from the seen head of the same version: %w", got.object(), coffer.ErrRollback)
	}
	return nil
}
