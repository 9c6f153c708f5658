package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKillDownloadFolder: kill -9 the CLI in the middle of a download of a folder of files of
// about 1 MiB (written past the page cache): every file under its final name is complete, the
// others exist at most as partial files; the re-run completes and leaves nothing else behind.
func TestKillDownloadFolder(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	proxy := newSlowProxy(t, srv.url)
	u := newUser(t, proxy.url, "pw for finn")
	u.ok("signup", "finn")
	src := filepath.Join(t.TempDir(), "medium")
	const files = 24
	for i := range files {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), randomBytes(t, 1<<20+i*4099))
	}
	u.ok("put", src, "/medium")

	dstDir := t.TempDir()
	dst := filepath.Join(dstDir, "medium")
	killGetMidway(t, u, proxy, "/medium", dst, files<<20/2)
	ents, _ := os.ReadDir(dst)
	placed := 0
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			if !strings.HasSuffix(name, ".coffer-partial") {
				t.Errorf("unexpected file %s after the kill", name)
			}
			continue
		}
		want, _ := os.ReadFile(filepath.Join(src, name))
		if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is in place but differs from the original (%d of %d bytes, %v)", name, len(got), len(want), err)
		}
		placed++
	}
	t.Logf("after the kill: %d of %d files in place, %d entries", placed, files, len(ents))
	proxy.getPerRead.Store(0)
	r := u.run("get", "/medium", dstDir)
	if r.code != 0 {
		t.Fatalf("re-run: %s", r)
	}
	sameTree(t, src, dst) // also fails on a leftover partial file
}
