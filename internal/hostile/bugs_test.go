package hostile

// Known gaps found by this suite. Each test asserts the behaviour we want and is skipped with
// "BUG:" until the owning package changes (doc/SECURITY.md, "Known gaps").

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"coffer"
	"coffer/client"
	"coffer/internal/testenv"
)

// TestFsckOrphanIsNotCorruption: a SIGKILL between a blob file's rename and its bookkeeping
// leaves an orphan blob file (seen in TestCrashKillRestart). fsck reports it as a "problem" and
// exits 1, the same as real corruption, so an operator cannot tell a harmless leftover of a
// killed upload from damage. Orphans should be reported (and left for GC) without failing fsck.
func TestFsckOrphanIsNotCorruption(t *testing.T) {
	bin := cofferBin(t)
	srv := startServe(t, bin)
	ctx := context.Background()
	cfg := client.Config{Server: srv.url, StateDir: t.TempDir(), KDF: testenv.CheapKDF(), MinKDF: testenv.CheapKDF()}
	if _, err := client.Signup(ctx, cfg, client.SignupOptions{Username: "o", Password: []byte("pw"), Device: "d"}); err != nil {
		t.Fatal(err)
	}
	srv.kill()
	// What a kill after the rename and before the row leaves behind.
	id := coffer.BlobID{0xab, 0xcd}
	h := id.String()
	p := filepath.Join(srv.data, "blobs", h[0:2], h[2:4], h)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("orphan"), 0o600)
	out, err := exec.Command(srv.bin, "admin", "fsck", "--data", srv.data).CombinedOutput()
	if !strings.Contains(string(out), "orphan") {
		t.Fatalf("fsck does not mention the orphan:\n%s", out)
	}
	if err != nil {
		t.Fatalf("fsck fails on a harmless orphan: %v\n%s", err, out)
	}
}
