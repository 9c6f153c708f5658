package hostile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"

	"coffer/client"
	"coffer/internal/server"
	"coffer/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers (loggers).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestLogCanary runs a whole session with marked names, contents and passwords and checks that
// neither the server's log, nor the client's log, nor any request the client sends contains any
// of them or any key, in any common encoding.
func TestLogCanary(t *testing.T) {
	t.Parallel()
	const mark = "CANARY-7f3a9c"
	var srvLog, cliLog syncBuffer
	env := testenv.New(t, func(cfg *server.Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(&srvLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	rec := newRecorder()
	cfg := env.Config(t.TempDir())
	cfg.HTTPClient = rec.client()
	cfg.Logger = slog.New(slog.NewJSONHandler(&cliLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	pw1, pw2 := []byte(mark+"-password-one"), []byte(mark+"-password-two")
	user := "canaryuser"
	c, err := client.Signup(ctx, cfg, client.SignupOptions{Username: user, Password: pw1, Device: "d"})
	if err != nil {
		t.Fatal(err)
	}
	name := mark + "-secret-name.txt"
	content := bytes.Repeat([]byte(mark+"-content "), 400_000) // ~8 MiB: several chunks and packs
	dir := filepath.Join(t.TempDir(), mark+"-folder")
	writeFile(t, filepath.Join(dir, name), content)
	writeFile(t, filepath.Join(dir, mark+"-small"), []byte(mark+"-small-content"))
	// Lose one answer of each kind so the client's retry paths log too.
	lost := map[string]bool{}
	var lmu sync.Mutex
	rec.setFault(func(m, p string, n int) string {
		lmu.Lock()
		defer lmu.Unlock()
		k := m + " " + p[:min(len(p), 12)]
		if !lost[k] && ((m == "PUT" && strings.Contains(p, "/blobs/")) || strings.Contains(p, "/folders/") || strings.HasPrefix(p, "/v1/blobs/")) {
			lost[k] = true
			return "lose"
		}
		return ""
	})
	if _, err := c.Upload(ctx, []string{dir}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	remoteDir := "/" + mark + "-folder"
	if _, err := c.List(ctx, remoteDir); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := c.Download(ctx, []string{remoteDir}, out, client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, mark+"-folder", name)); !bytes.Equal(got, content) {
		t.Fatal("round trip")
	}
	rec.setFault(nil)
	if err := c.Move(ctx, remoteDir+"/"+name, "/"+mark+"-moved"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "/"+mark+"-moved"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mkdir(ctx, "/"+mark+"-dir2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Versions(ctx, remoteDir+"/"+mark+"-small"); err != nil {
		t.Fatal(err)
	}
	if err := c.ChangePassword(ctx, pw1, pw2); err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.StateDir = t.TempDir()
	c2, err := client.Login(ctx, cfg2, user, pw2, "d2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Trash(ctx); err != nil {
		t.Fatal(err)
	}
	// A wrong password attempt (its failure is logged by both sides).
	if _, err := client.Login(ctx, cfg2, user, []byte(mark+"-wrong"), "d3"); err == nil {
		t.Fatal("wrong password accepted")
	}

	// The secrets.
	s := captureSecretsPW(t, env, user, pw2)
	type named struct {
		what string
		b    []byte
	}
	needles := []named{
		{"mark", []byte(mark)}, {"name", []byte(name)}, {"content", content[:64]},
		{"password 1", pw1}, {"password 2", pw2},
		{"master key", s.mk[:]}, {"recovery key", func() []byte { rk := s.mk.RecoveryKey(); return rk[:] }()},
		{"recovery key text", []byte(s.mk.RecoveryKey().String())},
		{"password wrap key", s.lk.Wrap[:]}, {"login private key", s.lk.Login.Seed()},
		{"PK", argon2.IDKey(pw2, s.kdf.Salt[:], s.kdf.Time, s.kdf.MemoryKiB, s.kdf.Threads, 32)},
		{"tree key", s.bundle.TreeKey[:]}, {"signing seed", s.bundle.SigningSeed[:]},
		{"content hash", func() []byte { h := sha256.Sum256(content); return h[:] }()},
	}
	small := s.lookup(t, env, remoteDir+"/"+mark+"-small")
	needles = append(needles, named{"node key", small.key[:]}, named{"content key", small.body.Content.Key[:]})
	hay := map[string][]byte{"server log": srvLog.Bytes(), "client log": cliLog.Bytes()}
	for i, r := range rec.requests() {
		var h bytes.Buffer
		h.WriteString(r.Method + " " + r.Path + "\n")
		for k, vs := range r.Header {
			h.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		h.Write(r.Body)
		hay["request "+itoa(i)+" "+r.Method+" "+r.Path] = h.Bytes()
	}
	if len(srvLog.Bytes()) == 0 || len(cliLog.Bytes()) == 0 || len(rec.requests()) < 20 {
		t.Fatalf("nothing captured: %d bytes of server log, %d requests", len(srvLog.Bytes()), len(rec.requests()))
	}
	for where, h := range hay {
		for _, n := range needles {
			for _, enc := range encodings(n.b) {
				if bytes.Contains(h, enc) {
					t.Errorf("%s contains the %s", where, n.what)
					break
				}
			}
		}
	}
	t.Logf("checked %d bytes of server log, %d bytes of client log, %d requests for %d secrets", len(srvLog.Bytes()), len(cliLog.Bytes()), len(rec.requests()), len(needles))
}
