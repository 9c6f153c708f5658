package hostile

// Scenario 8, alerting: after Config.AlertAfter consecutive verification failures of one kind
// the client raises an alert (ErrServerAlert, one slog warning without secrets) and stops
// retrying automatically; the error text stays the same (no oracle), and a later honest answer
// is accepted.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"coffer"
	"coffer/client"
	"coffer/internal/testenv"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writes (a slog handler's destination).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestScenario08_AlertAfterRepeatedFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "alice")
	env := f.env
	s := captureSecrets(t, env, "alice")
	a := s.lookup(t, env, "/d/a").body.Content
	d := s.lookup(t, env, "/d")

	var logs lockedBuffer
	newClient := func() *client.Client {
		cfg := env.Config(f.state)
		cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c, err := client.Login(ctx, cfg, "alice", testenv.Password("alice"), "x")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var mu sync.Mutex
	gets := map[string]int{}
	counting := func(inner testenv.Hook) testenv.Hook {
		return func(req *http.Request, resp *http.Response) error {
			mu.Lock()
			switch {
			case isBlobGet(req, resp):
				gets["blob"]++
			case isListing(req, resp):
				gets[folderOf(req)]++
			}
			mu.Unlock()
			return inner(req, resp)
		}
	}
	take := func(k string) int {
		mu.Lock()
		defer mu.Unlock()
		n := gets[k]
		gets[k] = 0
		return n
	}

	// 1. File contents: a truncated blob (the client re-reads a short blob up to 3 times).
	c := newClient()
	env.SetHook(counting(blobEdit(env, a.Chunks[0].Blob, func(_ coffer.BlobID, b []byte) []byte {
		return b[:a.Chunks[1].Offset+10]
	})))
	var first string
	for k := 1; k <= 4; k++ {
		var out bytes.Buffer
		err := c.Cat(ctx, "/d/a", &out)
		if !errors.Is(err, coffer.ErrAuth) {
			t.Fatalf("cat %d: %v", k, err)
		}
		if first == "" {
			first = err.Error()
		} else if err.Error() != first {
			t.Errorf("cat %d: message changed: %q vs %q", k, err, first)
		}
		alert := errors.Is(err, client.ErrServerAlert)
		n := take("blob")
		switch {
		case k < 3 && (alert || c.Alerted()):
			t.Fatalf("cat %d: alert raised early", k)
		case k >= 3 && (!alert || !c.Alerted()):
			t.Fatalf("cat %d: no alert after %d consecutive failures: %v", k, k, err)
		case k <= 3 && n != 3:
			t.Errorf("cat %d: %d blob fetches, want 3 (retries before the alert)", k, n)
		case k == 4 && n != 1:
			t.Errorf("cat %d: %d blob fetches after the alert, want 1 (no automatic retry)", k, n)
		}
	}
	if n := strings.Count(logs.String(), "ALERT"); n != 1 {
		t.Errorf("%d alert log lines, want 1:\n%s", n, logs.String())
	}
	// An honest answer is accepted again; the alert stays raised, the count starts over.
	env.SetHook(nil)
	var out bytes.Buffer
	if err := c.Cat(ctx, "/d/a", &out); err != nil || !bytes.Equal(out.Bytes(), f.contents["/d/a"]) {
		t.Fatalf("honest cat after the alert: %v", err)
	}
	env.SetHook(blobEdit(env, a.Chunks[0].Blob, func(_ coffer.BlobID, b []byte) []byte {
		b[a.Chunks[0].Offset+3] ^= 1
		return b
	}))
	if err := c.Cat(ctx, "/d/a", &out); !errors.Is(err, coffer.ErrAuth) || errors.Is(err, client.ErrServerAlert) || !c.Alerted() {
		t.Fatalf("one failure after a success: %v (alerted %v)", err, c.Alerted())
	}

	// 2. Listings: a listing cut off before its end frame (re-read up to 3 times), in a new
	// client (a new run).
	c = newClient()
	if _, err := c.List(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	folder := d.rec.Node.String()
	env.SetHook(counting(func(req *http.Request, resp *http.Response) error {
		if isListing(req, resp) && folderOf(req) == folder {
			b, _ := testenv.ReadBody(resp)
			testenv.ReplaceBody(resp, b[:len(b)-5]) // no end frame
		}
		return nil
	}))
	take(folder)
	for k := 1; k <= 4; k++ {
		err := expectListRefused(t, c, "/d", coffer.ErrCorrupt)
		alert := errors.Is(err, client.ErrServerAlert)
		n := take(folder)
		switch {
		case k < 3 && alert:
			t.Fatalf("list %d: alert raised early", k)
		case k >= 3 && !alert:
			t.Fatalf("list %d: no alert: %v", k, err)
		case k <= 3 && n != 3:
			t.Errorf("list %d: %d listing fetches, want 3", k, n)
		case k == 4 && n != 1:
			t.Errorf("list %d: %d listing fetches after the alert, want 1", k, n)
		}
	}
	env.SetHook(nil)

	// The alert lines carry no names, contents or keys.
	log := logs.String()
	if n := strings.Count(log, "ALERT"); n != 2 {
		t.Errorf("%d alert log lines for two clients, want 2", n)
	}
	for _, secret := range []string{"/d/a", `"d"`, hex.EncodeToString(f.contents["/d/a"][:16]), hex.EncodeToString(s.bundle.TreeKey[:])} {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "ALERT") && strings.Contains(line, secret) {
				t.Errorf("alert log line contains %q: %s", secret, line)
			}
		}
	}
}
