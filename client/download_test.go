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

// TestDownloadMixedSizes downloads a folder of files of every write path (page cache below
// DirectMin, direct above, unaligned tails, several files per pack and per range, a file of
// 5 chunks written by the sink): every file matches with its mode and mtime, no partial file
// is left, a re-run skips them all, and with Overwrite a changed local file is replaced.
func TestDownloadMixedSizes(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "mia")
	src := filepath.Join(t.TempDir(), "mixed")
	dm := client.DirectMin
	sizes := []int{0, 1, 4096, dm - 1, dm, dm + 1, dm + 4096, 1<<20 - 1, 1 << 20, 1<<20 + 1, 2<<20 + 4097, 4 << 20, 4<<20 + 1}
	var names []string
	for i, n := range sizes {
		names = append(names, fmt.Sprintf("s%02d", i))
		writeFile(t, filepath.Join(src, names[i]), randBytes(n))
	}
	for i := range 10 {
		name := fmt.Sprintf("sub/m%02d", i)
		names = append(names, name)
		writeFile(t, filepath.Join(src, name), randBytes(1<<20+i*1000))
	}
	if err := os.Chmod(filepath.Join(src, "s05"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	res, err := c.Download(ctx, []string{"/mixed"}, dst, client.TransferOptions{})
	if err != nil || res.Files != len(names) {
		t.Fatalf("download: %+v %v", res, err)
	}
	for _, name := range names {
		sameFile(t, filepath.Join(src, name), filepath.Join(dst, "mixed", name))
	}
	for _, d := range []string{filepath.Join(dst, "mixed"), filepath.Join(dst, "mixed", "sub")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Name()[0] == '.' {
				t.Errorf("leftover %s in %s", e.Name(), d)
			}
		}
	}
	res, err = c.Download(ctx, []string{"/mixed"}, dst, client.TransferOptions{Overwrite: true})
	if err != nil || res.Files != 0 || res.Skipped != len(names) {
		t.Fatalf("re-run: %+v %v", res, err)
	}
	changed := filepath.Join(dst, "mixed", "sub", "m03")
	writeFile(t, changed, []byte("changed"))
	res, err = c.Download(ctx, []string{"/mixed"}, dst, client.TransferOptions{Overwrite: true})
	if err != nil || res.Files != 1 || res.Skipped != len(names)-1 {
		t.Fatalf("overwrite: %+v %v", res, err)
	}
	sameFile(t, filepath.Join(src, "sub", "m03"), changed)
}
