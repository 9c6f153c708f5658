package directio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	data := make([]byte, 3*ReadBuf+777)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(data)
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	for _, s := range []struct{ off, n int64 }{
		{0, 0}, {0, size}, {1, 4095}, {4095, 2}, {4096, 4096}, {ReadBuf - 1, ReadBuf + 3},
		{size - 10, 10}, {size, 0}, {12345, 2*ReadBuf + 1}, {ReadBuf, ReadBuf},
	} {
		want := data[s.off : s.off+s.n]
		// WriteTo (what an HTTP response uses), Read with a small buffer, and byte by byte.
		for _, how := range []string{"WriteTo", "Read", "OneByte"} {
			rd, err := OpenReader(name, s.off, s.n)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			switch how {
			case "WriteTo":
				var b bytes.Buffer
				_, err = rd.WriteTo(&b)
				got = b.Bytes()
			case "Read":
				got, err = io.ReadAll(struct{ io.Reader }{rd})
			case "OneByte":
				if s.n > 3*Align {
					rd.Close()
					continue
				}
				got, err = io.ReadAll(iotest.OneByteReader(rd))
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s [%d, +%d): %d bytes (equal %v), %v", how, s.off, s.n, len(got), bytes.Equal(got, want), err)
			}
			if err := rd.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if err := rd.Close(); err != nil {
				t.Errorf("second close: %v", err)
			}
		}
	}
	// A section past the end of the file.
	rd, err := OpenReader(name, size-5, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got, err := io.ReadAll(struct{ io.Reader }{rd})
	if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(got, data[size-5:]) {
		t.Errorf("past the end: %d bytes, %v; want the 5 bytes there and ErrUnexpectedEOF", len(got), err)
	}
	if _, err := OpenReader(name, -1, 3); err == nil {
		t.Error("negative offset accepted")
	}
}
