package client_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"coffer/client"
	"coffer/internal/testenv"
)

// requestLog records the routes of the requests passing through the test proxy.
type requestLog struct {
	mu     sync.Mutex
	routes []string
}

func (l *requestLog) hook(req *http.Request, resp *http.Response) error {
	r := req.Method + " " + req.URL.Path
	for _, part := range strings.Split(req.URL.Path, "/") {
		if len(part) >= 16 {
			r = strings.Replace(r, part, "{id}", 1)
		}
	}
	l.mu.Lock()
	l.routes = append(l.routes, r+" "+http.StatusText(resp.StatusCode))
	l.mu.Unlock()
	return nil
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.routes
	l.routes = nil
	return out
}

// TestPutRoundTrips: a put into a folder the client already knows, with its cached view current,
// is one blob upload and one commit, without listings; a folder put creates its folders in the
// commit of its files. When another device moved the tree, the
// commit on the stale view is refused (409) and rebuilt on the current head, and every decision
// taken on the cached view that no commit re-checks (an existing name, a skip) is taken again on
// the current head, so a stale cache never makes a put fail or skip wrongly.
func TestPutRoundTrips(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	log := &requestLog{}
	env.SetHook(log.hook)
	c := env.Client(t, "alice")
	other, err := client.Login(ctx, env.Config(t.TempDir()), "alice", testenv.Password("alice"), "other")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	local := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	put := func(c *client.Client, src, dst string) client.TransferResult {
		t.Helper()
		res, err := c.Upload(ctx, []string{src}, dst, client.TransferOptions{})
		if err != nil {
			t.Fatalf("upload %s: %v", dst, err)
		}
		return res
	}

	put(c, local("a", "first"), "/a") // warms the cached view
	log.take()
	put(c, local("b", "second"), "/b")
	want := []string{"PUT /v1/trees/{id}/blobs/{id} OK", "POST /v1/trees/{id}/commit OK"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Fatalf("put with a current cached view: requests %q; want %q", got, want)
	}

	// A folder put is one commit: the new folder and its files appear together.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "inner"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x", "y", "inner/z"} {
		local(filepath.Join("sub", name), "in a folder: "+name)
	}
	if res := put(c, sub, "/sub"); res.Files != 3 || res.Folders != 2 {
		t.Fatalf("folder put: %+v; want 3 files, 2 folders", res)
	}
	commits := 0
	got := log.take()
	for _, r := range got {
		if strings.HasSuffix(r, "/commit OK") {
			commits++
		} else if strings.Contains(r, "/commit ") {
			t.Fatalf("folder put: refused commit in %q", got)
		}
	}
	if commits != 1 {
		t.Fatalf("folder put: requests %q; want the folders and files in one commit", got)
	}
	for _, p := range []string{"/sub/x", "/sub/y", "/sub/inner/z"} {
		if _, err := other.Stat(ctx, p); err != nil {
			t.Errorf("stat %s from the other device: %v", p, err)
		}
	}

	// Another device commits: c's cached view is now behind.
	if _, err := other.Mkdir(ctx, "/from-other", false); err != nil {
		t.Fatal(err)
	}
	log.take()
	put(c, local("c", "third"), "/c")
	got = log.take()
	if !slices.Contains(got, "POST /v1/trees/{id}/commit Conflict") || got[len(got)-1] != "POST /v1/trees/{id}/commit OK" {
		t.Fatalf("put on a stale cached view: requests %q; want a refused commit, then a committed one", got)
	}
	for _, p := range []string{"/a", "/b", "/c", "/from-other"} {
		if _, err := other.Stat(ctx, p); err != nil {
			t.Errorf("stat %s from the other device: %v", p, err)
		}
	}

	// The other device removes /a, then /b, while c's cached view still shows them.
	if _, err := c.Stat(ctx, "/a"); err != nil { // refresh c's view: /a is there
		t.Fatal(err)
	}
	if err := other.Remove(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	// Same name, size and mtime as the stored /a would be a skip: re-checked, it is gone.
	if res := put(c, filepath.Join(dir, "a"), "/a"); res.Files != 1 || res.Skipped != 0 {
		t.Fatalf("put /a after the other device removed it: %+v; want it uploaded, not skipped", res)
	}
	if _, err := c.Stat(ctx, "/b"); err != nil {
		t.Fatal(err)
	}
	if err := other.Remove(ctx, "/b"); err != nil {
		t.Fatal(err)
	}
	// Without Overwrite, an existing name is an error: the cached view's "exists" is re-checked.
	if res := put(c, local("b2", "new b"), "/b"); res.Files != 1 {
		t.Fatalf("put /b after the other device removed it: %+v", res)
	}
	// And a real skip is still a skip.
	if res := put(c, filepath.Join(dir, "a"), "/a"); res.Files != 0 || res.Skipped != 1 {
		t.Fatalf("put /a again: %+v; want it skipped", res)
	}
}

// TestPutCommitBatches: an upload commits its files in batches bounded by a file count and by a
// number of chunk references, and every file arrives.
func TestPutCommitBatches(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	log := &requestLog{}
	env.SetHook(log.hook)
	c := env.Client(t, "bea")
	src := t.TempDir()
	write := func(name string, size int) {
		if err := os.WriteFile(filepath.Join(src, name), bytes.Repeat([]byte{byte(size)}, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		write(fmt.Sprintf("small%d", i), 10+i)
	}
	count := func(dst string) int {
		t.Helper()
		log.take()
		res, err := c.Upload(ctx, []string{src}, dst, client.TransferOptions{})
		if err != nil || res.Files != len(mustReadDir(t, src)) {
			t.Fatalf("upload %s: %+v, %v", dst, res, err)
		}
		n := 0
		for _, r := range log.take() {
			if strings.HasSuffix(r, "/commit OK") {
				n++
			}
		}
		return n
	}
	client.SetCommitBatch(c, 4, 1_000_000)
	if n := count("/by-files"); n != 2 { // 6 files, 4 per batch
		t.Errorf("6 small files, batches of 4 files: %d commits, want 2", n)
	}
	// Two files of 3 chunks (1 MiB chunks): a batch commits once it holds 3 chunk references, so
	// each file is a commit of its own (with a bound of 4, both would go in one).
	for _, f := range mustReadDir(t, src) {
		os.Remove(filepath.Join(src, f))
	}
	write("big1", 2<<20+1)
	write("big2", 2<<20+2)
	client.SetCommitBatch(c, 4000, 3)
	if n := count("/by-chunks"); n != 2 {
		t.Errorf("2 files of 3 chunks, batches of 3 chunks: %d commits, want 2", n)
	}
	for _, p := range []string{"/by-files/small5", "/by-chunks/big1", "/by-chunks/big2"} {
		if _, err := c.Stat(ctx, p); err != nil {
			t.Errorf("stat %s: %v", p, err)
		}
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
