package server_test

// FuzzHandlers feeds arbitrary requests (method, path, body, with or without a valid session) to
// the real server handler over real stores, seeded with every request of an honest client
// session. A request may be refused in any 4xx way, but never answered with a 5xx and never
// panic.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer/client"
	"coffer/internal/testenv"
)

// capture records the client's requests (and its bearer token).
type capture struct {
	mu    sync.Mutex
	reqs  []seedReq
	token string
}

type seedReq struct {
	method, path string
	body         []byte
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	var b []byte
	if r.Body != nil {
		b, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, seedReq{r.Method, r.URL.RequestURI(), b})
	if a := r.Header.Get("Authorization"); a != "" {
		c.token = strings.TrimPrefix(a, "Bearer ")
	}
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"}

func FuzzHandlers(f *testing.F) {
	env := testenv.New(f)
	cp := &capture{}
	ctx := context.Background()
	cfg := env.Config(f.TempDir())
	cfg.Server = env.URL
	cfg.HTTPClient = &http.Client{Transport: cp}
	c, err := client.Signup(ctx, cfg, client.SignupOptions{Username: "fuzz", Password: []byte("fuzz password"), Device: "f"})
	if err != nil {
		f.Fatal(err)
	}
	src := filepath.Join(f.TempDir(), "dir")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("x"), 5000), 0o644)
	if _, err := c.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		f.Fatal(err)
	}
	if _, err := c.Mkdir(ctx, "/m", false); err != nil {
		f.Fatal(err)
	}
	if _, err := c.Download(ctx, []string{"/dir"}, f.TempDir(), client.TransferOptions{}); err != nil {
		f.Fatal(err)
	}
	c.Versions(ctx, "/dir/f")
	c.Sessions(ctx)
	c.Usage(ctx)
	if err := c.Remove(ctx, "/m"); err != nil {
		f.Fatal(err)
	}
	if err := c.ChangePassword(ctx, []byte("fuzz password"), []byte("fuzz password 2")); err != nil {
		f.Fatal(err)
	}
	// ChangePassword revoked nothing of ours (it keeps the calling session): log in anew anyway.
	c2, err := client.Login(ctx, cfg, "fuzz", []byte("fuzz password 2"), "f2")
	if err != nil {
		f.Fatal(err)
	}
	c2.List(ctx, "/")
	// A shared folder: share /dir with a second account (which accepts), list, revoke.
	cfg2 := env.Config(f.TempDir())
	cfg2.Server = env.URL
	cfg2.HTTPClient = &http.Client{Transport: &capture{}}
	peer, err := client.Signup(ctx, cfg2, client.SignupOptions{Username: "fuzzpeer", Password: []byte("peer password"), Device: "p"})
	if err != nil {
		f.Fatal(err)
	}
	sh, err := c2.Share(ctx, "/dir", "fuzzpeer", client.ShareOptions{Write: true, Unverified: true})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := peer.AcceptShare(ctx, sh.Tree.String(), ""); err != nil {
		f.Fatal(err)
	}
	c2.Shares(ctx)
	c2.List(ctx, "/dir")
	if _, err := c2.Revoke(ctx, "/dir", "fuzzpeer"); err != nil {
		f.Fatal(err)
	}
	cp.mu.Lock()
	token := cp.token
	seeds := append([]seedReq(nil), cp.reqs...)
	cp.mu.Unlock()
	for _, s := range seeds {
		m := 0
		for i, x := range fuzzMethods {
			if x == s.method {
				m = i
			}
		}
		if strings.Contains(s.path, "/logout") {
			continue // would end the session the fuzzer uses
		}
		f.Add(uint8(m), s.path, s.body, true)
		f.Add(uint8(m), s.path, s.body, false)
	}
	f.Add(uint8(1), "/v1/trees/zz/commit", []byte(`{"base_version":1,"head":"AAAA","records":[{"record":"AAAA","blobs":["00"]}]}`), true)
	f.Add(uint8(0), "/v1/blobs/"+strings.Repeat("0", 64), []byte(nil), true)
	f.Add(uint8(1), "/v1/invites/"+strings.Repeat("0", 32)+"/accept", []byte(`{"epoch":1}`), true)
	f.Add(uint8(1), "/v1/trees", []byte(`{"tree":"`+strings.Repeat("0", 32)+`","roster":"Q0ZNMQ==","commit":{"base_version":0,"head":"","records":[]},"invites":["AA=="]}`), true)
	h := env.Server.Handler()
	f.Fuzz(func(t *testing.T, method uint8, path string, body []byte, auth bool) {
		if !strings.HasPrefix(path, "/") || strings.Contains(path, "/changes/stream") || strings.Contains(path, "logout") {
			return // streams block by design; logout would revoke the fuzzer's session
		}
		if strings.Contains(path, "/sessions/") && fuzzMethods[int(method)%len(fuzzMethods)] == "DELETE" {
			return // likewise
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(cctx, "GET", "/", bytes.NewReader(body))
		req.Method = fuzzMethods[int(method)%len(fuzzMethods)]
		u, err := req.URL.Parse(path)
		if err != nil {
			return
		}
		req.URL, req.RequestURI = u, path
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		done := make(chan struct{})
		timer := time.AfterFunc(10*time.Second, func() {
			select {
			case <-done:
			default:
				panic(fmt.Sprintf("handler hangs: %s %q with %d body bytes", req.Method, path, len(body)))
			}
		})
		h.ServeHTTP(w, req)
		close(done)
		timer.Stop()
		if w.Code >= 500 && w.Code != http.StatusInsufficientStorage {
			t.Fatalf("%s %q (%d body bytes): %d %s", req.Method, path, len(body), w.Code, w.Body.String())
		}
	})
}
