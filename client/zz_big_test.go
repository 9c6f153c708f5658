package client_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"coffer/client"
)

func BenchmarkZZ1GiB(b *testing.B) {
	_, c := benchClient(b)
	src := filepath.Join(b.TempDir(), "big")
	f, _ := os.Create(src)
	buf := randBytes(64 << 20)
	for i := 0; i < 16; i++ {
		buf[0] = byte(i)
		f.Write(buf)
	}
	f.Close()
	b.ResetTimer()
	t0 := time.Now()
	if _, err := c.Upload(context.Background(), []string{src}, "/big", client.TransferOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Logf("upload %v", time.Since(t0))
}
