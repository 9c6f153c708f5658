package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/api"
)

func TestBlobs(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	data := []byte("0123456789abcdef")
	p, st, ae := u.upload(data)
	if st != 200 {
		t.Fatalf("upload: %d %+v", st, ae)
	}
	if p.Blob != coffer.BlobID(sha256.Sum256(data)) || p.Size != int64(len(data)) {
		t.Fatalf("upload response %+v", p)
	}
	// Idempotent.
	if p2, st, _ := u.upload(data); st != 200 || p2 != p {
		t.Fatalf("re-upload: %d %+v", st, p2)
	}

	get := func(token, rng string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", e.ts.URL+"/v1/blobs/"+p.Blob.String(), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, c := range []struct {
		rng, body, contentRange string
		status                  int
	}{
		{"", string(data), "", 200},
		{"bytes=2-5", "2345", "bytes 2-5/16", 206},
		{"bytes=10-", "abcdef", "bytes 10-15/16", 206},
		{"bytes=-3", "def", "bytes 13-15/16", 206},
		{"bytes=14-100", "ef", "bytes 14-15/16", 206},
		{"bytes=16-", "", "bytes */16", 416},
		{"bytes=5-2", "", "bytes */16", 416},
		{"bytes=0-1,3-4", "", "bytes */16", 416},
	} {
		st, body, hdr := get(u.token, c.rng)
		if st != c.status || hdr.Get("Content-Range") != c.contentRange || (st < 300 && body != c.body) {
			t.Errorf("Range %q: %d %q %q", c.rng, st, hdr.Get("Content-Range"), body)
		}
	}

	// Other accounts cannot read the blob or upload into the tree.
	b := e.signup("bob")
	if st, _, _ := get(b.token, ""); st != 404 {
		t.Fatalf("bob reads alice's blob: %d", st)
	}
	st, ae = e.putBlob(treePath(u, ""), b.token, []byte("x"), nil)
	wantErr(t, st, ae, 404, api.CodeNotFound)

	// Check: only the caller's blobs are present.
	var cr api.BlobsResponse
	ids := []coffer.BlobID{p.Blob, {9}}
	if st, _ := e.call("POST", "/v1/blobs/check", u.token, api.BlobsRequest{Blobs: ids}, &cr); st != 200 || len(cr.Present) != 1 || cr.Present[0] != p.Blob {
		t.Fatalf("check: %+v", cr)
	}
	if st, _ := e.call("POST", "/v1/blobs/check", b.token, api.BlobsRequest{Blobs: ids}, &cr); st != 200 || len(cr.Present) != 0 {
		t.Fatalf("check by bob: %+v", cr)
	}

	// Empty body.
	st, ae = e.putBlob(treePath(u, ""), u.token, []byte{}, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	// The upload form without an ID is gone.
	st, ae = e.call("POST", treePath(u, "/blobs"), u.token, []byte("x"), nil)
	wantErr(t, st, ae, 404, api.CodeNotFound)
}

// rawRequest writes a request by hand (to control Content-Length) and reads the response.
func rawRequest(t *testing.T, e *env, head string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestBlobLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DefaultQuota = 100 })
	u := e.signup("alice")
	path := treePath(u, "/blobs/"+strings.Repeat("ab", 32))

	resp := rawRequest(t, e, fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nCoffer-CRC32C: 00000000\r\nContent-Length: %d\r\n\r\n",
		path, u.token, api.MaxBlobSize+1))
	if resp.StatusCode != 413 {
		t.Fatalf("oversize: %d", resp.StatusCode)
	}
	resp = rawRequest(t, e, fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nCoffer-CRC32C: 00000000\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		path, u.token))
	if resp.StatusCode != http.StatusLengthRequired {
		t.Fatalf("no Content-Length: %d", resp.StatusCode)
	}

	if _, st, ae := u.upload(make([]byte, 60)); st != 200 {
		t.Fatalf("upload: %d %+v", st, ae)
	}
	big := []byte(strings.Repeat("q", 60))
	_, st, ae := u.upload(big)
	wantErr(t, st, ae, 507, api.CodeQuota)
	if _, err := e.blobs.Stat(context.Background(), coffer.BlobID(sha256.Sum256(big))); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("over-quota blob kept: %v", err)
	}
}

func TestGC(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.GCGrace = time.Hour })
	u := e.signup("alice")
	ctx := context.Background()
	ref, _, _ := u.upload([]byte("referenced"))
	old, _, _ := u.upload([]byte("old and unreferenced"))
	fr := u.file(u.root, "f", ref.Blob)
	u.commit(fr)
	e.clock.Add(2 * time.Hour)
	young, _, _ := u.upload([]byte("young"))

	n, err := e.srv.CollectGarbage(ctx)
	if err != nil || n != 1 {
		t.Fatalf("gc: %d %v", n, err)
	}
	for id, want := range map[coffer.BlobID]bool{ref.Blob: true, old.Blob: false, young.Blob: true} {
		_, err := e.blobs.Stat(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("blob %v exists=%v, want %v (%v)", id, got, want, err)
		}
	}
	// The collected blob can no longer be committed; uploading it again makes it usable.
	req, _ := u.build(u.file(u.root, "g", old.Blob))
	st, ae, _ := u.post(req)
	wantErr(t, st, ae, 422, api.CodeInvalidCommit)
	if _, st, _ := u.upload([]byte("old and unreferenced")); st != 200 {
		t.Fatal("re-upload")
	}
	if st, ae, _ := u.post(req); st != 200 {
		t.Fatalf("commit after re-upload: %d %+v", st, ae)
	}
	u.accept(req)
	e.clock.Add(2 * time.Hour)
	if n, err := e.srv.CollectGarbage(ctx); err != nil || n != 1 { // young
		t.Fatalf("gc 2: %d %v", n, err)
	}
	// A blob referenced only by a kept older version survives; once the file is deleted, it goes.
	f := fr.Node
	u.commit(u.next(f, u.root))
	e.clock.Add(2 * time.Hour)
	if n, err := e.srv.CollectGarbage(ctx); err != nil || n != 0 {
		t.Fatalf("gc 3: %d %v", n, err)
	}
	u.commit(u.tomb(f))
	if n, err := e.srv.CollectGarbage(ctx); err != nil || n != 1 {
		t.Fatalf("gc 4: %d %v", n, err)
	}
	if _, err := e.blobs.Stat(ctx, ref.Blob); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("blob of a deleted file kept: %v", err)
	}
}

// TestStorageFull puts the blob store on a 1 MiB tmpfs (needs root; CI must be able to).
func TestStorageFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (not root?): %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	e := newEnvBlobs(t, dir)
	u := e.signup("alice")
	_, st, ae := u.upload(make([]byte, 2<<20))
	wantErr(t, st, ae, 507, api.CodeUnavailable)
	mustContain(t, ae.Message, "storage full")
	// Smaller blobs still fit.
	if _, st, ae := u.upload([]byte("small")); st != 200 {
		t.Fatalf("small upload: %d %+v", st, ae)
	}
}
