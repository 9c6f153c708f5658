package format

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"testing"
	"time"

	"coffer"
)

const benchChunk = 1 << 20

func rawGCM(b *testing.B) cipher.AEAD {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return aead
}

// BenchmarkChunk compares ContentCipher with raw crypto/cipher AES-GCM on 1 MiB chunks in the same
// run; the "ratio" metric of the Compare sub-benchmarks is ContentCipher time / raw time.
func BenchmarkChunk(b *testing.B) {
	plain := make([]byte, benchChunk)
	c := ContentKey(id32(1)).Cipher()
	raw := rawGCM(b)
	var nonce [12]byte
	buf := make([]byte, 0, benchChunk+16)
	ct := c.Seal(nil, plain, 3, false)
	rawCT := raw.Seal(nil, nonce[:], plain, nil)

	b.Run("Seal/format", func(b *testing.B) {
		b.SetBytes(benchChunk)
		for i := 0; b.Loop(); i++ {
			buf = c.Seal(buf[:0], plain, uint64(i), false)
		}
	})
	b.Run("Seal/raw", func(b *testing.B) {
		b.SetBytes(benchChunk)
		for i := 0; b.Loop(); i++ {
			binary.BigEndian.PutUint64(nonce[:], uint64(i))
			buf = raw.Seal(buf[:0], nonce[:], plain, nil)
		}
	})
	b.Run("Open/format", func(b *testing.B) {
		b.SetBytes(benchChunk)
		for b.Loop() {
			var err error
			if buf, err = c.Open(buf[:0], ct, 3, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Open/raw", func(b *testing.B) {
		b.SetBytes(benchChunk)
		var n [12]byte
		for b.Loop() {
			var err error
			if buf, err = raw.Open(buf[:0], n[:], rawCT, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Compare/seal", func(b *testing.B) {
		var tf, tr time.Duration
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			buf = c.Seal(buf[:0], plain, uint64(i), false)
			t1 := time.Now()
			buf = raw.Seal(buf[:0], nonce[:], plain, nil)
			tf, tr = tf+t1.Sub(t0), tr+time.Since(t1)
		}
		b.ReportMetric(float64(tf)/float64(tr), "ratio")
	})
}

func BenchmarkFolderRoot100k(b *testing.B) {
	entries := make([]Entry, 100_000)
	for i := range entries {
		binary.BigEndian.PutUint64(entries[i].Node[:], uint64(i))
		entries[i].Hash[0] = byte(i)
	}
	folder := coffer.NodeID{1}
	b.SetBytes(int64(len(entries) * 48))
	for b.Loop() {
		FolderRoot(folder, entries)
	}
}

func BenchmarkArgon2idDefault(b *testing.B) {
	p := DefaultKDF()
	for b.Loop() {
		DerivePasswordKeys([]byte("correct horse battery staple"), p)
	}
}

func BenchmarkRecordSealOpen(b *testing.B) {
	signer := testSigner(1)
	nk, wk := NodeKey(id32(1)), WrapKey(id32(2))
	body := &Body{Name: "report.pdf", Mode: 0o644, Content: testContent(ContentKey(id32(3)), 10<<20, DefaultChunkSize)}
	for b.Loop() {
		r, err := SealRecord(KindFile, coffer.NodeID{1}, coffer.NodeID{2}, 1, [32]byte{}, nk, wk, body, signer)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.OpenBody(nk); err != nil {
			b.Fatal(err)
		}
	}
}
