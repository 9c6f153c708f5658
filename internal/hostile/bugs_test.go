package hostile

// Known gaps found by this suite. Each test asserts the behaviour we want and is skipped with
// "BUG:" until the owning package changes (doc/SECURITY.md, "Known gaps").

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/internal/testenv"
)

// TestUploadVerifiesBlobID: a server (malicious or buggy) that answers a blob upload with the ID
// of another blob makes the client commit a record pointing at the wrong bytes. Today the upload
// is acknowledged and the file is unreadable afterwards (ErrAuth on download): an acknowledged
// upload is silently lost, against goal 1 (no data loss). Checking that the returned ID is the
// SHA-256 of the bytes sent costs one hash pass over the ciphertext.
func TestUploadVerifiesBlobID(t *testing.T) {
	t.Skip("BUG: client accepts a blob ID that is not SHA-256 of the uploaded bytes; the acknowledged file is unreadable (client/upload.go)")
	t.Parallel()
	f := newFixture(t, "victim")
	ctx := context.Background()
	other := f.blobIDs(t)[0]
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.Method == "POST" && strings.HasSuffix(req.URL.Path, "/blobs") && resp.StatusCode == 200 {
			b, _ := testenv.ReadBody(resp)
			var r api.BlobPutResponse
			json.Unmarshal(b, &r)
			r.Blob = other
			nb, _ := json.Marshal(r)
			testenv.ReplaceBody(resp, nb)
		}
		return nil
	})
	src := filepath.Join(t.TempDir(), "n")
	writeFile(t, src, randBytes(5000))
	_, err := f.c.Upload(ctx, []string{src}, "/", client.TransferOptions{})
	f.env.SetHook(nil)
	if err == nil {
		_, derr := f.c.Download(ctx, []string{"/n"}, filepath.Join(t.TempDir(), "n"), client.TransferOptions{})
		t.Fatalf("upload acknowledged with a wrong blob ID; download then says: %v", derr)
	}
	if !errors.Is(err, coffer.ErrAuth) && !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("wrong blob ID: %v, want ErrAuth or ErrCorrupt", err)
	}
}

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
