package hostile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coffer"
	"coffer/client"
	"coffer/internal/testenv"
)

// cutProxy is a TCP proxy that counts bytes each way and, when armed, cuts every connection
// once a direction's total crosses a threshold (and calls onCut).
type cutProxy struct {
	ln       net.Listener
	target   string
	up, down atomic.Int64 // client->server, server->client
	mu       sync.Mutex
	cutUp    int64 // cut when up crosses this (0: never)
	cutDown  int64
	onCut    func()
	conns    []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: strings.TrimPrefix(target, "http://")}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cutAll() })
	return p
}

func (p *cutProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c, &p.up, func() int64 { p.mu.Lock(); defer p.mu.Unlock(); return p.cutUp })
		go p.pipe(c, s, &p.down, func() int64 { p.mu.Lock(); defer p.mu.Unlock(); return p.cutDown })
	}
}

func (p *cutProxy) pipe(dst, src net.Conn, n *atomic.Int64, limit func() int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			total := n.Add(int64(k))
			if l := limit(); l > 0 && total >= l {
				p.mu.Lock()
				f := p.onCut
				p.cutUp, p.cutDown, p.onCut = 0, 0, nil
				p.mu.Unlock()
				if f != nil {
					f()
				}
				p.cutAll()
				return
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (p *cutProxy) cutAll() {
	p.mu.Lock()
	cs := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

func (p *cutProxy) arm(up, down int64, onCut func()) {
	p.mu.Lock()
	p.cutUp, p.cutDown, p.onCut = up, down, onCut
	p.mu.Unlock()
}

// TestNetworkCutThenResume cuts the connections in the middle of an upload and of a download
// (the client process "dies" at the same moment) and checks that the re-runs resume (send or
// fetch less than everything again) and end with exact content.
func TestNetworkCutThenResume(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	px := newCutProxy(t, env.ProxyURL) // in front of the hook proxy, so answers can be edited too
	cfg := env.Config(t.TempDir())
	cfg.Server = px.url()
	cfg.Parallel = 1
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{}}
	c := env.ClientWith(t, cfg, "cut")
	ctx := context.Background()
	size := 24*chunk + 11
	content := randBytes(size)
	src := filepath.Join(t.TempDir(), "big")
	writeFile(t, src, content)

	// Upload: cut at ~60% of the bytes.
	start := px.up.Load()
	cctx, cancel := context.WithCancel(ctx)
	px.arm(start+int64(size)*6/10, 0, cancel)
	if _, err := c.Upload(cctx, []string{src}, "/", client.TransferOptions{}); err == nil {
		t.Fatal("upload survived the cut")
	}
	cancel()
	mid := px.up.Load()
	if _, err := c.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatalf("resumed upload: %v", err)
	}
	resent := px.up.Load() - mid
	t.Logf("upload: %d bytes before the cut, %d bytes sent by the resumed run (file %d)", mid-start, resent, size)
	if resent > int64(size)*3/4 {
		t.Errorf("resumed upload sent %d of %d bytes again: no resume", resent, size)
	}
	// Download: cut at ~50%.
	dst := filepath.Join(t.TempDir(), "big")
	start = px.down.Load()
	dctx, dcancel := context.WithCancel(ctx)
	px.arm(0, start+int64(size)/2, dcancel)
	if _, err := c.Download(dctx, []string{"/big"}, dst, client.TransferOptions{}); err == nil {
		t.Fatal("download survived the cut")
	}
	dcancel()
	if _, err := os.Stat(dst); err == nil {
		t.Fatal("interrupted download left the target")
	}
	// A resumed download that gets tampered bytes for the rest: refused, nothing left behind.
	s := captureSecrets(t, env, "cut")
	ct := s.lookup(t, env, "/big").body.Content
	last := ct.Chunks[len(ct.Chunks)-1]
	env.SetHook(blobEdit(env, last.Blob, func(_ coffer.BlobID, b []byte) []byte { b[last.Offset+1] ^= 1; return b }))
	if _, err := c.Download(ctx, []string{"/big"}, dst, client.TransferOptions{}); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("resumed download of tampered bytes: %v", err)
	}
	env.SetHook(nil)
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Logf("after a refused resume, beside the target: %d entries (partial kept for resume?)", len(ents))
		for _, e := range ents {
			if e.Name() == "big" {
				t.Fatal("refused download created the target")
			}
		}
	}
	// Cut again, then resume honestly.
	dctx, dcancel = context.WithCancel(ctx)
	px.arm(0, px.down.Load()+int64(size)/2, dcancel)
	c.Download(dctx, []string{"/big"}, dst, client.TransferOptions{})
	dcancel()
	mid = px.down.Load()
	if _, err := c.Download(ctx, []string{"/big"}, dst, client.TransferOptions{}); err != nil {
		t.Fatalf("resumed download: %v", err)
	}
	refetched := px.down.Load() - mid
	t.Logf("download: %d bytes fetched by the resumed run (file %d)", refetched, size)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Fatal("resumed download differs")
	}
	if refetched > int64(size)*3/4 {
		t.Errorf("resumed download fetched %d of %d bytes again: no resume", refetched, size)
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 1 {
		t.Errorf("leftovers beside the download: %d entries", len(ents))
	}
	// Cuts without the process dying: the client's retries carry the transfer through.
	px.arm(px.up.Load()+2<<20, 0, nil)
	src2 := filepath.Join(t.TempDir(), "big2")
	writeFile(t, src2, content[:10*chunk])
	if _, err := c.Upload(ctx, []string{src2}, "/", client.TransferOptions{}); err != nil {
		t.Fatalf("upload through one cut: %v", err)
	}
}

// TestStorageFullLosesNothing runs `coffer serve` with its blob store on a small tmpfs: uploads
// that do not fit fail with a clear error wrapping ErrUnavailable, and everything acknowledged
// before stays intact.
func TestStorageFullLosesNothing(t *testing.T) {
	bin := cofferBin(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (not root?): %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	srv := startServe(t, bin, "--blobs", dir)
	ctx := context.Background()
	cfg := client.Config{Server: srv.url, StateDir: t.TempDir(), KDF: testenv.CheapKDF(), MinKDF: testenv.CheapKDF()}
	c, err := client.Signup(ctx, cfg, client.SignupOptions{Username: "full", Password: []byte("pw"), Device: "d"})
	if err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(t.TempDir(), "small")
	want := map[string][]byte{}
	for i := 0; i < 20; i++ {
		b := randBytes(10_000 + i)
		name := "s" + itoa(i)
		want["/small/"+name] = b
		writeFile(t, filepath.Join(small, name), b)
	}
	if _, err := c.Upload(ctx, []string{small}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big")
	writeFile(t, big, randBytes(12*chunk))
	start := time.Now()
	_, err = c.Upload(ctx, []string{big}, "/", client.TransferOptions{})
	if err == nil {
		t.Fatal("12 MiB upload into a 6 MiB store succeeded")
	}
	if !errors.Is(err, coffer.ErrUnavailable) || !strings.Contains(err.Error(), "full") {
		t.Errorf("storage full: unclear error %v", err)
	}
	t.Logf("storage full after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if es, err := c.List(ctx, "/"); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range es {
			if e.Name == "big" {
				t.Error("the failed upload is visible")
			}
		}
	}
	out := t.TempDir()
	if _, err := c.Download(ctx, []string{"/small"}, out, client.TransferOptions{}); err != nil {
		t.Fatalf("download after storage full: %v", err)
	}
	for p, b := range want {
		if got, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(p))); !bytes.Equal(got, b) {
			t.Errorf("%s lost or changed after storage full", p)
		}
	}
	_ = io.EOF
}
