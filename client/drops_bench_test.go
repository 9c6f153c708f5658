package client_test

import (
	"context"
	"testing"
	"time"

	"coffer/client"
)

// BenchmarkUploadLinkAndImport: a stranger uploads 200 files of 4 KiB (a folder) through an
// upload-only link, then the owner imports them (one op = both). Server in process, no proxy.
func BenchmarkUploadLinkAndImport(b *testing.B) {
	const n = 200
	env, alice := benchClient(b)
	ctx := context.Background()
	if _, err := alice.Mkdir(ctx, "/inbox", false); err != nil {
		b.Fatal(err)
	}
	li, err := alice.CreateLink(ctx, "/inbox", client.LinkOptions{UploadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	src := smallTree(b, n, 4096)
	cfg := env.Config("")
	up, err := client.OpenUploadLink(ctx, cfg, li.URL, client.LinkOpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var upT, imT time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := up.Upload(ctx, []string{src}, client.TransferOptions{}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		rs, err := alice.ImportDrops(ctx)
		if err != nil || len(rs) != n {
			b.Fatalf("import: %d %v", len(rs), err)
		}
		upT, imT = upT+t1.Sub(t0), imT+time.Since(t1)
	}
	b.ReportMetric(float64(upT.Microseconds())/float64(b.N*n), "upload-µs/file")
	b.ReportMetric(float64(imT.Microseconds())/float64(b.N*n), "import-µs/file")
}
