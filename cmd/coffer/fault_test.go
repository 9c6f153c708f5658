package main

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowProxy is a reverse proxy in front of a test server that counts and slows blob transfers,
// so a test can kill a process at a known point of a transfer.
type slowProxy struct {
	url string

	blobPuts   atomic.Int64 // blob uploads answered by the server
	getBytes   atomic.Int64 // blob bytes sent to the client
	putDelay   atomic.Int64 // nanoseconds each blob upload's answer is held back
	getPerRead atomic.Int64 // nanoseconds of sleep per 32 KiB of blob download
	corrupt    atomic.Bool  // flip one bit of every blob download

	// Listing replay: the first answer for each folder listing is recorded; with replay set, it
	// is served again instead of the current one (a server rolling back).
	mu       sync.Mutex
	listings map[string][]byte
	replay   atomic.Bool
}

func newSlowProxy(t *testing.T, target string) *slowProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{listings: map[string][]byte{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ErrorLog = nil
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		switch {
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/"):
			time.Sleep(time.Duration(p.putDelay.Load()))
			if resp.StatusCode == 200 {
				p.blobPuts.Add(1)
			}
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/blobs/"):
			resp.Body = &slowBody{rc: resp.Body, p: p, flip: p.corrupt.Load()}
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/folders/") && resp.StatusCode == 200:
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			p.mu.Lock()
			old, seen := p.listings[r.URL.Path]
			if !seen {
				p.listings[r.URL.Path] = body
			}
			p.mu.Unlock()
			if seen && p.replay.Load() {
				body = old
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Del("Content-Length")
		}
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	hs := httptest.NewServer(rp)
	t.Cleanup(hs.Close)
	p.url = hs.URL
	return p
}

type slowBody struct {
	rc   io.ReadCloser
	p    *slowProxy
	flip bool // flip one bit of the first byte read
}

func (b *slowBody) Read(buf []byte) (int, error) {
	if d := b.p.getPerRead.Load(); d > 0 {
		if len(buf) > 32<<10 {
			buf = buf[:32<<10]
		}
		time.Sleep(time.Duration(d))
	}
	n, err := b.rc.Read(buf)
	if b.flip && n > 0 {
		buf[n/2] ^= 0x10
		b.flip = false
	}
	b.p.getBytes.Add(int64(n))
	return n, err
}

func (b *slowBody) Close() error { return b.rc.Close() }

// TestKillServerDuringUpload: kill -9 the server in the middle of a folder upload of many files,
// restart it, re-run the same put: it completes, everything downloads identical, fsck is clean.
func TestKillServerDuringUpload(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	proxy := newSlowProxy(t, srv.url)
	u := newUser(t, proxy.url, "pw for erin")
	u.ok("signup", "erin")
	u.ok("mkdir", "/backup")

	src := filepath.Join(t.TempDir(), "src")
	for i := range 400 {
		size := 1000 + (i*7919)%60000
		writeFile(t, filepath.Join(src, "d"+itoa(uint64(i%7)), "f"+itoa(uint64(i))+".bin"), randomBytes(t, size))
	}
	writeFile(t, filepath.Join(src, "large1.bin"), randomBytes(t, 6<<20))
	writeFile(t, filepath.Join(src, "large2.bin"), randomBytes(t, 5<<20+3))

	proxy.putDelay.Store(int64(40 * time.Millisecond))
	cmd := u.command("--parallel", "2", "put", src, "/backup")
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	if !waitFor(60*time.Second, func() bool { return proxy.blobPuts.Load() >= 3 }) {
		t.Fatalf("upload made no progress: %s", out.String())
	}
	srv.kill9()
	proxy.putDelay.Store(0)
	select {
	case <-exited:
		if code := cmd.ProcessState.ExitCode(); code != exitUnreachable {
			t.Logf("interrupted put exited %d (want 8 unless it rode out the restart): %s", code, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Log("put still retrying after 20 s; restarting the server under it")
	}
	srv.start()
	<-exited

	before := proxy.blobPuts.Load()
	r := u.run("put", src, "/backup")
	if r.code != 0 {
		t.Fatalf("re-run after the crash: %s", r)
	}
	t.Logf("first run: exit %d after %d blob uploads; re-run: %d blob uploads; %s",
		cmd.ProcessState.ExitCode(), before, proxy.blobPuts.Load()-before, strings.TrimSpace(r.stderr))
	dst := t.TempDir()
	u.ok("get", "/backup/src", dst)
	sameTree(t, src, filepath.Join(dst, "src"))

	srv.stop()
	fsck := newUser(t, "", "").run("admin", "fsck", "--data", srv.dataDir)
	if fsck.code != 0 {
		t.Fatalf("fsck after crash and resume: %s", fsck)
	}

	// A flipped bit in a stored blob: fsck reports it and exits 1.
	var blob string
	filepath.WalkDir(filepath.Join(srv.dataDir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && blob == "" {
			blob = p
		}
		return nil
	})
	if blob == "" {
		t.Fatal("no blob files in the data directory")
	}
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(blob, b, 0o600); err != nil {
		t.Fatal(err)
	}
	fsck = newUser(t, "", "").run("admin", "fsck", "--data", srv.dataDir)
	if fsck.code != exitError || !strings.Contains(fsck.stderr, "coffer: admin fsck: 1 problem found") || fsck.stdout == "" {
		t.Fatalf("fsck of a corrupted blob: %s", fsck)
	}
}

// TestKillDownload: kill -9 the CLI in the middle of a 64 MiB download: the destination is
// absent; the re-run completes and matches.
func TestKillDownload(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	proxy := newSlowProxy(t, srv.url)
	u := newUser(t, proxy.url, "pw for frank")
	u.ok("signup", "frank")
	local := t.TempDir()
	big := writeFile(t, filepath.Join(local, "big.bin"), randomBytes(t, 64<<20))
	u.ok("put", big, "/big.bin")

	dstDir := t.TempDir()
	dst := filepath.Join(dstDir, "big.bin")
	killGetMidway(t, u, proxy, "/big.bin", dst, 44<<20)
	if _, err := os.Lstat(dst); !os.IsNotExist(err) {
		t.Fatalf("destination exists after the kill: %v", err)
	}
	proxy.getPerRead.Store(0)
	before := proxy.getBytes.Load()
	r := u.run("get", "/big.bin", dst)
	if r.code != 0 {
		t.Fatalf("re-run: %s", r)
	}
	sameFile(t, big, dst)
	// The client journals the verified prefix every 32 MiB: more than 44 MiB had arrived, so the
	// re-run must not fetch everything again.
	if fetched := proxy.getBytes.Load() - before; fetched >= 64<<20 {
		t.Errorf("resumed download fetched %d MiB: no resume from the verified prefix", fetched>>20)
	}
	entries, _ := os.ReadDir(dstDir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("leftover files beside the download: %v", names)
	}
}

// TestInterrupt: SIGINT during an upload stops it cleanly with exit 130; re-running completes.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	proxy := newSlowProxy(t, srv.url)
	u := newUser(t, proxy.url, "pw for gina")
	u.ok("signup", "gina")
	f := writeFile(t, filepath.Join(t.TempDir(), "f.bin"), randomBytes(t, 24<<20))
	proxy.putDelay.Store(int64(100 * time.Millisecond))
	cmd := u.command("--parallel", "1", "put", f, "/f.bin")
	var errb safeBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	if !waitFor(60*time.Second, func() bool { return proxy.blobPuts.Load() >= 1 }) {
		t.Fatal("upload made no progress")
	}
	cmd.Process.Signal(os.Interrupt)
	<-exited
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted || !strings.HasPrefix(errb.String(), "coffer: put: ") {
		t.Fatalf("SIGINT: exit %d, stderr %q", code, errb.String())
	}
	proxy.putDelay.Store(0)
	u.ok("put", f, "/f.bin")
	got := filepath.Join(t.TempDir(), "f.bin")
	u.ok("get", "/f.bin", got)
	sameFile(t, f, got)
}

// TestHostileServer: a flipped bit in a blob and a replayed (older) listing both fail
// verification: exit 6, nothing written under the destination name.
func TestHostileServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	proxy := newSlowProxy(t, srv.url)
	u := newUser(t, proxy.url, "pw for hal")
	u.ok("signup", "hal")
	f := writeFile(t, filepath.Join(t.TempDir(), "f.bin"), randomBytes(t, 300_000))
	u.ok("put", f, "/f.bin") // the proxy records the root listing with /f.bin in it

	proxy.corrupt.Store(true)
	r := u.fails(exitVerify, "cat", "/f.bin")
	if len(r.stdout) != 0 {
		t.Fatalf("cat wrote %d unverified bytes", len(r.stdout))
	}
	dst := filepath.Join(t.TempDir(), "f.bin")
	u.fails(exitVerify, "get", "/f.bin", dst)
	if _, err := os.Lstat(dst); !os.IsNotExist(err) {
		t.Fatalf("destination written from tampered data: %v", err)
	}
	proxy.corrupt.Store(false)
	u.ok("get", "/f.bin", dst)
	sameFile(t, f, dst)

	// A newer commit, then the server serves the old root listing again: a rollback.
	u.ok("mkdir", "/newer")
	u.ok("ls", "/")
	proxy.replay.Store(true)
	u.fails(exitVerify, "ls", "/")
}

// killGetMidway runs `coffer --parallel 1 get remote dst` through proxy slowed to at most 32 MiB/s,
// kills it (SIGKILL) once it has fetched atLeast bytes, and waits for it to exit. The proxy stays
// slow: the caller resets getPerRead.
func killGetMidway(t *testing.T, u *user, proxy *slowProxy, remote, dst string, atLeast int64) {
	t.Helper()
	proxy.getPerRead.Store(int64(time.Millisecond))
	start := proxy.getBytes.Load()
	cmd := u.command("--parallel", "1", "get", remote, dst)
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	if !waitFor(60*time.Second, func() bool { return proxy.getBytes.Load()-start >= atLeast }) {
		t.Fatalf("download made no progress: %s", out.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}
