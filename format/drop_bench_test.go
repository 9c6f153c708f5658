package format

import (
	"crypto/sha256"
	"testing"

	"coffer"
)

func benchDrop(b *testing.B) (*Bundle, *PublicKeys, *UploadKeys, *DropFile) {
	alice := testBundle(60)
	pub := alice.PublicKeys("alice")
	id := LinkID(id16(0x61))
	uk := &UploadKeys{LinkKey: UploadLinkKey(alice, id), OwnerFingerprint: KeyFingerprint(pub)}
	ck := ContentKey(id32(0x70))
	ct := &Content{Key: ck, Commitment: ck.Commitment(), Size: 5, ChunkSize: DefaultChunkSize, Hash: sha256.Sum256(nil),
		Chunks: []ChunkRef{{Blob: coffer.BlobID(id32(0x71)), Length: 21}}}
	return alice, pub, uk, &DropFile{Path: []string{"a"}, Name: "hello.txt", MTime: 42, Mode: 0o600, Content: ct}
}

// BenchmarkSealDrop is the visitor's per-file cost (one HPKE MLKEM768-X25519 seal).
func BenchmarkSealDrop(b *testing.B) {
	_, pub, uk, f := benchDrop(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealDrop(LinkID(id16(0x61)), NewDropID(), pub, uk, f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenDrop is the owner's per-drop verification cost (HPKE open, authenticator, rules).
func BenchmarkOpenDrop(b *testing.B) {
	alice, pub, uk, f := benchDrop(b)
	d, err := SealDrop(LinkID(id16(0x61)), NewDropID(), pub, uk, f)
	if err != nil {
		b.Fatal(err)
	}
	o, err := NewDropOpener(alice)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Open(d); err != nil {
			b.Fatal(err)
		}
	}
}
