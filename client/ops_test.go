package client_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"coffer"
	"coffer/client"
	"coffer/internal/testenv"
)

func TestMoveRules(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "judy")
	src := filepath.Join(t.TempDir(), "f")
	writeFile(t, src, []byte("x"))
	for _, p := range []string{"/a/f", "/b/f", "/b/g"} {
		if _, err := c.Mkdir(ctx, filepath.Dir(p), true); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Upload(ctx, []string{src}, p, client.TransferOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Mkdir(ctx, "/a/f", false); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("mkdir over a file: %v", err)
	}
	if _, err := c.Mkdir(ctx, "/a/f/x", true); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("mkdir -p through a file: %v", err)
	}
	if err := c.Move(ctx, "/a/f", "/b/g"); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("mv onto an existing file: %v", err)
	}
	if err := c.Move(ctx, "/a/f", "/b"); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("mv into a folder holding the name: %v", err)
	}
	if err := c.Move(ctx, "/a/f", "/a/renamed"); err != nil {
		t.Fatal(err)
	}
	if err := c.Move(ctx, "/a/renamed", "/a/renamed"); err != nil {
		t.Fatalf("mv onto itself: %v", err)
	}
	if err := c.Move(ctx, "/a", "/b/nested"); err != nil {
		t.Fatal(err)
	}
	if err := c.Move(ctx, "/b", "/b/nested"); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("mv into a descendant: %v", err)
	}
	if err := c.Move(ctx, "/", "/b"); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("mv /: %v", err)
	}
	if err := c.Move(ctx, "/missing", "/b"); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("mv missing: %v", err)
	}
	var paths []string
	err := c.Walk(ctx, "/", func(e *client.Entry) error {
		paths = append(paths, e.Path)
		if e.Name == "nested" {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil || strings.Join(paths, " ") != "/ /b /b/f /b/g /b/nested" {
		t.Fatalf("walk: %v %v", paths, err)
	}

	// Two trashed files with one name; restore by ID, then onto a taken name.
	if err := c.Remove(ctx, "/b/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, []string{src}, "/b/f", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "/b/f"); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trash(ctx)
	if err != nil || len(tr) != 2 {
		t.Fatalf("trash: %v %v", len(tr), err)
	}
	if err := c.RestoreTrash(ctx, "f", ""); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("ambiguous restore: %v", err)
	}
	if err := c.RestoreTrash(ctx, tr[0].ID.String(), ""); err != nil {
		t.Fatal(err)
	}
	if err := c.RestoreTrash(ctx, "f", ""); !errors.Is(err, coffer.ErrExist) {
		t.Fatalf("restore onto a taken name: %v", err)
	}
	if err := c.RestoreTrash(ctx, "f", "/b/f2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, "/b/f2"); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentWritersRetry(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	state := t.TempDir()
	a := env.ClientWith(t, env.Config(state), "kim")
	b, err := client.Login(ctx, env.Config(t.TempDir()), "kim", testenv.Password("kim"), "b")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 5; i++ {
		for _, c := range []*client.Client{a, b} {
			wg.Add(1)
			go func(c *client.Client, i int) {
				defer wg.Done()
				_, err := c.Mkdir(ctx, "/d/n"+string(rune('0'+i)), true) // both clients race on each name
				errs <- err
			}(c, i)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, coffer.ErrExist) {
			t.Fatal(err)
		}
	}
	es, err := a.List(ctx, "/d")
	if err != nil || len(es) != 5 {
		t.Fatalf("list: %v %v", names(es), err)
	}
}

func TestRetriesTransientFailures(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "leo")
	var fails atomic.Int64
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if ((req.Method == "PUT" && strings.Contains(req.URL.Path, "/blobs/")) || strings.HasSuffix(req.URL.Path, "/commit") ||
			strings.Contains(req.URL.Path, "/folders/")) && fails.Add(1)%2 == 1 {
			resp.StatusCode = http.StatusServiceUnavailable
		}
		return nil
	})
	src := filepath.Join(t.TempDir(), "f")
	writeFile(t, src, randBytes(5<<20))
	if _, err := c.Upload(ctx, []string{src}, "/f", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	env.SetHook(nil)
	dst := filepath.Join(t.TempDir(), "f")
	if _, err := c.Download(ctx, []string{"/f"}, dst, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
	if fails.Load() < 4 {
		t.Fatalf("only %d requests went through the failing hook", fails.Load())
	}
}

type recProgress struct {
	mu       sync.Mutex
	started  map[string]int64
	added    int64
	done     int
	warnings []string
}

func (p *recProgress) Start(name string, size int64) client.Tracker {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started[name] = size
	return p
}
func (p *recProgress) Add(n int64) { p.mu.Lock(); p.added += n; p.mu.Unlock() }
func (p *recProgress) Done(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.done++
	}
}
func (p *recProgress) Warn(msg string) {
	p.mu.Lock()
	p.warnings = append(p.warnings, msg)
	p.mu.Unlock()
}

func TestProgressAndOrigins(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	c := env.Client(t, "olaf")
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "a"), randBytes(6<<20))
	writeFile(t, filepath.Join(src, "b"), randBytes(10))
	if err := os.Symlink("a", filepath.Join(src, "l")); err != nil {
		t.Fatal(err)
	}
	p := &recProgress{started: map[string]int64{}}
	res, err := c.Upload(ctx, []string{src}, "/", client.TransferOptions{Progress: p})
	if err != nil || res.Files != 2 || res.Bytes != 6<<20+10 {
		t.Fatalf("upload: %+v %v", res, err)
	}
	if p.added != 6<<20+10 || p.done != 2 || len(p.started) != 2 || len(p.warnings) != 1 {
		t.Fatalf("progress: added %d done %d started %v warnings %v", p.added, p.done, p.started, p.warnings)
	}
	p = &recProgress{started: map[string]int64{}}
	if _, err := c.Download(ctx, []string{"/src"}, filepath.Join(t.TempDir(), "out"), client.TransferOptions{Progress: p}); err != nil {
		t.Fatal(err)
	}
	if p.added != 6<<20+10 || p.done != 2 || p.started["/src/a"] != 6<<20 {
		t.Fatalf("download progress: added %d done %d started %v", p.added, p.done, p.started)
	}

	// Uploading under a missing folder fails; the trash forgets origins that are gone.
	if _, err := c.Upload(ctx, []string{filepath.Join(src, "b")}, "/nope/b", client.TransferOptions{}); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("upload under a missing folder: %v", err)
	}
	if err := c.Remove(ctx, "/src/b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "/src"); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trash(ctx)
	if err != nil || len(tr) != 2 {
		t.Fatalf("trash: %v", err)
	}
	for _, e := range tr {
		switch e.Name {
		case "b":
			if e.TrashOrigin != "" {
				t.Fatalf("origin of b is in the trash, got %q", e.TrashOrigin)
			}
		case "src":
			if e.TrashOrigin != "/" || e.Path != "/src" {
				t.Fatalf("origin of src: %+v", e)
			}
		}
	}
	if err := c.RestoreTrash(ctx, "b", ""); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("restore without an origin: %v", err)
	}
	if err := c.RestoreTrash(ctx, "b", "/"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, "/b"); err != nil {
		t.Fatal(err)
	}
}
