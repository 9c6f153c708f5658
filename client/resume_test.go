package client_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"coffer/client"
	"coffer/internal/testenv"
)

// cancelAfter is a Progress that cancels a context once n bytes were reported.
type cancelAfter struct {
	mu     sync.Mutex
	total  int64
	n      int64
	cancel context.CancelFunc
}

func (p *cancelAfter) Start(string, int64) client.Tracker { return p }
func (p *cancelAfter) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total += n
	if p.total >= p.n {
		p.cancel()
	}
}
func (p *cancelAfter) Done(error) {}

func countRequests(env *testenv.Env, method, prefix string, contains string) *atomic.Int64 {
	var n atomic.Int64
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.Method == method && strings.HasPrefix(req.URL.Path, prefix) && strings.Contains(req.URL.Path, contains) && resp.StatusCode/100 == 2 {
			n.Add(1)
		}
		return nil
	})
	return &n
}

func TestUploadResumeReusesPacks(t *testing.T) {
	env := testenv.New(t)
	state := t.TempDir()
	c := env.ClientWith(t, env.Config(state), "gina")
	src := filepath.Join(t.TempDir(), "big")
	writeFile(t, src, randBytes(24<<20+123)) // 7 packs

	ctx, cancel := context.WithCancel(context.Background())
	_, err := c.Upload(ctx, []string{src}, "/big", client.TransferOptions{Progress: &cancelAfter{n: 12 << 20, cancel: cancel}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted upload: %v", err)
	}
	if _, err := c.Stat(context.Background(), "/big"); err == nil {
		t.Fatal("interrupted upload committed the file")
	}
	posts := countRequests(env, "PUT", "/v1/trees/", "/blobs/")
	res, err := c.Upload(context.Background(), []string{src}, "/big", client.TransferOptions{})
	if err != nil || res.Files != 1 {
		t.Fatalf("resumed upload: %+v %v", res, err)
	}
	if n := posts.Load(); n > 4 {
		t.Fatalf("resumed upload posted %d blobs, want at most 4 of 7", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "journal")); len(ents) != 0 {
		t.Fatalf("journal left behind: %v", ents)
	}
	dst := filepath.Join(t.TempDir(), "big")
	if _, err := c.Download(context.Background(), []string{"/big"}, dst, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
}

func TestUploadResumeChangedFileUsesFreshKey(t *testing.T) {
	env := testenv.New(t)
	state := t.TempDir()
	c := env.ClientWith(t, env.Config(state), "hank")
	src := filepath.Join(t.TempDir(), "big")
	data := randBytes(24 << 20)
	writeFile(t, src, data)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := c.Upload(ctx, []string{src}, "/big", client.TransferOptions{Progress: &cancelAfter{n: 12 << 20, cancel: cancel}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted upload: %v", err)
	}
	// Same size and mtime, different first chunk: the journal must not be trusted.
	st, _ := os.Stat(src)
	data[0] ^= 1
	writeFile(t, src, data)
	os.Chtimes(src, st.ModTime(), st.ModTime())
	posts := countRequests(env, "PUT", "/v1/trees/", "/blobs/")
	if _, err := c.Upload(context.Background(), []string{src}, "/big", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := posts.Load(); n != 6 {
		t.Fatalf("re-upload of a changed file posted %d blobs, want all 6", n)
	}
	dst := filepath.Join(t.TempDir(), "big")
	if _, err := c.Download(context.Background(), []string{"/big"}, dst, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
}

func TestDownloadResume(t *testing.T) {
	env := testenv.New(t)
	c := env.Client(t, "ivan")
	src := filepath.Join(t.TempDir(), "big")
	writeFile(t, src, randBytes(24<<20+99))
	if _, err := c.Upload(context.Background(), []string{src}, "/big", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "big")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := c.Download(ctx, []string{"/big"}, dst, client.TransferOptions{Progress: &cancelAfter{n: 12 << 20, cancel: cancel}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted download: %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("interrupted download created the destination")
	}
	if _, err := os.Stat(filepath.Join(dir, ".big.coffer-partial.json")); err != nil {
		t.Fatalf("no resume journal: %v", err)
	}
	gets := countRequests(env, "GET", "/v1/blobs/", "")
	if _, err := c.Download(context.Background(), []string{"/big"}, dst, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := gets.Load(); n > 4 {
		t.Fatalf("resumed download fetched %d ranges, want at most 4 of 7", n)
	}
	sameFile(t, src, dst)
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("leftovers: %v", ents)
	}
}
