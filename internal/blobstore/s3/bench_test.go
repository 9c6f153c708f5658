package s3_test

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"sync/atomic"
	"testing"

	"coffer/internal/blobstore"
	"coffer/internal/blobstore/blobstoretest"
	"coffer/internal/blobstore/disk"
)

const benchBlob = 4 << 20

// BenchmarkPut4MiB puts distinct 4 MiB blobs.
func BenchmarkPut4MiB(b *testing.B) {
	for _, name := range []string{"disk", "s3"} {
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, name)
			buf := make([]byte, benchBlob)
			rand.Read(buf)
			b.SetBytes(benchBlob)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				binary.LittleEndian.PutUint64(buf, uint64(i))
				if _, err := blobstoretest.PutBytes(b.Context(), s, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGet4MiB reads one 4 MiB blob whole.
func BenchmarkGet4MiB(b *testing.B) {
	for _, name := range []string{"disk", "s3"} {
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, name)
			buf := make([]byte, benchBlob)
			rand.Read(buf)
			id, err := blobstoretest.PutBytes(b.Context(), s, buf)
			if err != nil {
				b.Fatal(err)
			}
			cp := make([]byte, 256<<10)
			b.SetBytes(benchBlob)
			b.ResetTimer()
			for b.Loop() {
				rc, err := s.Get(b.Context(), id, 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.CopyBuffer(io.Discard, rc, cp); err != nil || n != benchBlob {
					b.Fatal(n, err)
				}
				rc.Close()
			}
		})
	}
}

func benchStore(b *testing.B, name string) blobstore.Store {
	b.Helper()
	if name == "disk" {
		d, err := disk.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	s, _, _ := newStore(b, "") // skips (or fails under CI) without COFFER_TEST_S3
	return s
}

// BenchmarkPut4MiBParallel puts distinct 4 MiB blobs from GOMAXPROCS×4 goroutines, as a busy
// server would.
func BenchmarkPut4MiBParallel(b *testing.B) {
	for _, name := range []string{"disk", "s3"} {
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, name)
			var seq atomic.Uint64
			b.SetBytes(benchBlob)
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, benchBlob)
				rand.Read(buf)
				for pb.Next() {
					binary.LittleEndian.PutUint64(buf, seq.Add(1))
					if _, err := blobstoretest.PutBytes(b.Context(), s, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
