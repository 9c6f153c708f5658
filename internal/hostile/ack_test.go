package hostile

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/client"
)

// TestLyingCommitAck: the server acknowledges commits it never applied (a fake 200, and a fake
// "409: the current head is yours"). The writer remembers the head it signed, so the next
// listing, by the same client or after a restart with the same state directory, is a rollback:
// an acknowledged write never silently disappears.
func TestLyingCommitAck(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "victim")
	ctx := context.Background()
	for _, lie := range []string{"fake 200", "fake 409 with our head"} {
		t.Run(lie, func(t *testing.T) {
			state := t.TempDir()
			rec := newRecorder()
			cfg := f.env.Config(state)
			cfg.HTTPClient = rec.client()
			c, err := client.Login(ctx, cfg, f.user, []byte("correct horse battery victim"), "l")
			if err != nil {
				t.Fatal(err)
			}
			rec.setFault(func(m, p string, n int) string {
				if m != "POST" || !strings.HasSuffix(p, "/commit") {
					return ""
				}
				if lie == "fake 200" {
					return `fake200:{"seq":999,"version":999}`
				}
				return "" // handled below
			})
			if lie != "fake 200" {
				// Answer 409 carrying the head the client just sent, as if a retried request
				// had been applied.
				rec.setFault(nil)
				rec.mu.Lock()
				rec.respond = func(req *http.Request, body []byte) *http.Response {
					if req.Method != "POST" || !strings.HasSuffix(req.URL.Path, "/commit") {
						return nil
					}
					var cr api.CommitRequest
					json.Unmarshal(body, &cr)
					e, _ := json.Marshal(api.Error{Code: api.CodeConflict, Message: "conflict",
						Current: &api.HeadInfo{Tree: f.tree(t), Version: cr.BaseVersion + 1, Head: cr.Head}})
					return jsonResponse(req, 409, string(e))
				}
				rec.mu.Unlock()
			}
			if _, err := c.Mkdir(ctx, "/acknowledged-"+strings.ReplaceAll(lie, " ", "-"), false); err != nil {
				t.Fatalf("mkdir: %v", err)
			}
			rec.setFault(nil)
			rec.mu.Lock()
			rec.respond = nil
			rec.mu.Unlock()
			expectListRefused(t, c, "/", coffer.ErrRollback)
			c2, err := client.Login(ctx, f.env.Config(state), f.user, []byte("correct horse battery victim"), "l2")
			if err != nil {
				t.Fatal(err)
			}
			expectListRefused(t, c2, "/", coffer.ErrRollback)
		})
	}
}

// tree returns the fixture account's tree ID.
func (f *fixture) tree(t testing.TB) coffer.TreeID {
	return captureSecrets(t, f.env, f.user).bundle.Tree
}
