package client_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"coffer/client"
	"coffer/internal/testenv"
)

func benchClient(b *testing.B) (*testenv.Env, *client.Client) {
	env := testenv.New(b)
	cfg := env.Config(b.TempDir())
	cfg.Server = env.URL // no proxy in the way
	return env, env.ClientWith(b, cfg, "bench")
}

func smallTree(b *testing.B, n, size int) string {
	dir := filepath.Join(b.TempDir(), "small")
	for i := 0; i < n; i++ {
		writeFile(b, filepath.Join(dir, fmt.Sprintf("d%02d", i%10), fmt.Sprintf("f%05d", i)), randBytes(size))
	}
	return dir
}

func BenchmarkUpload64MiB(b *testing.B) {
	_, c := benchClient(b)
	src := filepath.Join(b.TempDir(), "big")
	writeFile(b, src, randBytes(64<<20))
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Upload(context.Background(), []string{src}, fmt.Sprintf("/big%d", i), client.TransferOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpload1000Small(b *testing.B) {
	_, c := benchClient(b)
	src := smallTree(b, 1000, 4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Mkdir(context.Background(), fmt.Sprintf("/run%d", i), false); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Upload(context.Background(), []string{src}, fmt.Sprintf("/run%d", i), client.TransferOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "files/s")
}

func BenchmarkDownload64MiB(b *testing.B) {
	_, c := benchClient(b)
	src := filepath.Join(b.TempDir(), "big")
	writeFile(b, src, randBytes(64<<20))
	if _, err := c.Upload(context.Background(), []string{src}, "/big", client.TransferOptions{}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(dir, fmt.Sprint(i))
		if _, err := c.Download(context.Background(), []string{"/big"}, dst, client.TransferOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(dst)
		b.StartTimer()
	}
}

func BenchmarkDownload1000Small(b *testing.B) {
	_, c := benchClient(b)
	src := smallTree(b, 1000, 4096)
	if _, err := c.Upload(context.Background(), []string{src}, "/", client.TransferOptions{}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(dir, fmt.Sprint(i))
		if _, err := c.Download(context.Background(), []string{"/small"}, dst, client.TransferOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "files/s")
}
