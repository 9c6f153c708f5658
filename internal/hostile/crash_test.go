package hostile

// Crash safety with the real binary: `coffer serve` is SIGKILLed at random moments while a client
// uploads 1,000 small files; after every kill `coffer admin fsck` runs on the stopped server and,
// after every restart, every acknowledged upload must be listed with its exact content (and
// nothing else may be visible with other content). Also: storage full, and connections cut
// mid-transfer.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"

	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"coffer"
	"coffer/client"
	"coffer/internal/testenv"
)

// buildOnce builds the coffer binary for the crash tests of this test binary.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "coffer-hostile-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "coffer")
	out, err := exec.Command("go", "build", "-o", bin, "coffer/cmd/coffer").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, out)
	}
	return bin, nil
})

func cofferBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the coffer binary")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {}) // the binary lives until the process ends (shared by tests)
	return bin
}

// serverProc is a `coffer serve` subprocess that can be killed and restarted on the same address.
type serverProc struct {
	t      *testing.T
	bin    string
	data   string
	addr   string
	url    string
	extra  []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	log    bytes.Buffer
	starts int
}

func startServe(t *testing.T, bin string, extra ...string) *serverProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &serverProc{t: t, bin: bin, data: filepath.Join(t.TempDir(), "data"), addr: addr, url: "http://" + addr, extra: extra}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *serverProc) start() {
	s.t.Helper()
	s.mu.Lock()
	args := append([]string{"serve", "--data", s.data, "--listen", s.addr}, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+s.data)
	cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.log}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatal(err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	s.starts++
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-done:
			s.t.Fatalf("coffer serve exited at start %d: %s", s.starts, s.logText())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("coffer serve not healthy: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *serverProc) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

func (s *serverProc) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// fsck runs `coffer admin fsck` on the stopped server and returns the problem lines that are not
// orphan blob files, and the number of orphan lines.
func (s *serverProc) fsck(t *testing.T) (serious []string, orphans int, out string) {
	t.Helper()
	b, err := exec.Command(s.bin, "admin", "fsck", "--data", s.data).CombinedOutput()
	if err != nil {
		serious = append(serious, "fsck failed: "+err.Error())
	}
	for _, ln := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(ln, "orphan file"):
			orphans++
		case strings.HasPrefix(ln, "problem:") || strings.Contains(ln, "Error") || strings.Contains(ln, "error:"):
			serious = append(serious, ln)
		}
	}
	return serious, orphans, string(b)
}

// crashDuration is COFFER_CRASH_SECONDS (default 45).
func crashDuration() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("COFFER_CRASH_SECONDS")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 45 * time.Second
}

func TestCrashKillRestart(t *testing.T) {
	bin := cofferBin(t)
	srv := startServe(t, bin)
	ctx := context.Background()
	cfg := client.Config{Server: srv.url, StateDir: t.TempDir(), KDF: testenv.CheapKDF(), MinKDF: testenv.CheapKDF(),
		HTTPClient: &http.Client{Timeout: 20 * time.Second}}
	if _, err := client.Signup(ctx, cfg, client.SignupOptions{Username: "crash", Password: []byte("crash pw"), Device: "c"}); err != nil {
		t.Fatal(err)
	}
	login := func() (*client.Client, error) {
		return client.Login(ctx, cfg, "crash", []byte("crash pw"), "c")
	}
	// 1,000 small files in 40 folders of 25; each folder is one Upload (acknowledged when it
	// returns nil).
	const folders, perFolder = 40, 25
	src := t.TempDir()
	want := map[string][32]byte{} // remote path -> plaintext hash
	for i := 0; i < folders; i++ {
		for j := 0; j < perFolder; j++ {
			b := []byte(fmt.Sprintf("folder %d file %d %x", i, j, randBytes(16+rand.IntN(3000))))
			rel := fmt.Sprintf("f%02d/file%02d", i, j)
			writeFile(t, filepath.Join(src, rel), b)
			want["/"+rel] = sha256.Sum256(b)
		}
	}
	var acked sync.Map // folder name -> true
	var stop atomic.Bool
	deadline := time.Now().Add(crashDuration())
	uploadDone := make(chan struct{})
	var uploadErrs atomic.Int64
	var rounds atomic.Int64
	// The verifier pauses the uploader: Walk needs the whole tree at one head and a tree that
	// changes under it several times in a row gives up with ErrConflict (a known limit).
	var pause sync.RWMutex
	var inflight atomic.Int64
	midUpload := 0
	go func() {
		defer close(uploadDone)
		var c *client.Client
		// Round r uploads the 40 folders into /r<r>/ (round 0 into /), until the time is up.
		for round := 0; !stop.Load(); round++ {
			rounds.Store(int64(round))
			for i := 0; i < folders && !stop.Load(); i++ {
				name := fmt.Sprintf("f%02d", i)
				remote, key := "/", name
				if round > 0 {
					remote, key = fmt.Sprintf("/r%d", round), fmt.Sprintf("r%d/%s", round, name)
				}
				if c == nil {
					var err error
					if c, err = login(); err != nil {
						uploadErrs.Add(1)
						time.Sleep(20 * time.Millisecond)
						i--
						continue
					}
				}
				if round > 0 && i == 0 {
					if _, err := c.Mkdir(ctx, remote, true); err != nil {
						uploadErrs.Add(1)
						time.Sleep(20 * time.Millisecond)
						i--
						continue
					}
				}
				// Overwrite: a retried folder may be partly there from the killed attempt.
				pause.RLock()
				inflight.Add(1)
				_, err := c.Upload(ctx, []string{filepath.Join(src, name)}, remote, client.TransferOptions{Overwrite: true})
				inflight.Add(-1)
				pause.RUnlock()
				if err != nil {
					uploadErrs.Add(1)
					if errors.Is(err, coffer.ErrRollback) || errors.Is(err, coffer.ErrAuth) {
						t.Errorf("upload %s: %v", key, err)
						stop.Store(true)
						return
					}
					time.Sleep(20 * time.Millisecond)
					i--
					continue
				}
				acked.Store(key, true)
			}
		}
	}()
	cycles := 0
	maxOrphans := 0
	for time.Now().Before(deadline) {
		select {
		case <-uploadDone:
		default:
		}
		time.Sleep(time.Duration(30+rand.IntN(300)) * time.Millisecond)
		if inflight.Load() > 0 {
			midUpload++
		}
		srv.kill()
		cycles++
		if serious, orphans, out := srv.fsck(t); len(serious) > 0 {
			t.Fatalf("cycle %d: fsck after SIGKILL: %v\n%s", cycles, serious, out)
		} else if orphans > maxOrphans {
			maxOrphans = orphans
		}
		srv.start()
		// Verify with the same state directory: a lost acknowledged commit is a rollback.
		pause.Lock()
		verifyCrash(t, login, want, &acked, cycles)
		pause.Unlock()
		if t.Failed() {
			break
		}
	}
	stop.Store(true)
	<-uploadDone
	// Let the uploads finish without kills, then a final full check with downloads.
	c, err := login()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < folders && rounds.Load() == 0; i++ {
		name := fmt.Sprintf("f%02d", i)
		if _, ok := acked.Load(name); ok {
			continue
		}
		if _, err := c.Upload(ctx, []string{filepath.Join(src, name)}, "/", client.TransferOptions{Overwrite: true}); err != nil {
			t.Fatalf("final upload %s: %v", name, err)
		}
		acked.Store(name, true)
	}
	verifyCrash(t, login, want, &acked, cycles+1)
	out := t.TempDir()
	var tops []string
	for i := 0; i < folders; i++ {
		tops = append(tops, fmt.Sprintf("/f%02d", i))
	}
	if _, err := c.Download(ctx, tops, out, client.TransferOptions{}); err != nil {
		t.Fatalf("final download: %v", err)
	}
	n := 0
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(out, p)
			b, _ := os.ReadFile(p)
			if w, ok := want["/"+filepath.ToSlash(rel)]; !ok || sha256.Sum256(b) != w {
				t.Errorf("downloaded %s: not the uploaded content", rel)
			}
			n++
		}
		return nil
	})
	if n != len(want) {
		t.Errorf("downloaded %d files, want %d", n, len(want))
	}
	srv.kill()
	serious, orphans, fsckOut := srv.fsck(t)
	if len(serious) > 0 {
		t.Errorf("final fsck: %v\n%s", serious, fsckOut)
	}
	t.Logf("%d kill/restart cycles survived (%d of them during an upload; %d server starts, %d upload attempts failed, %d acknowledged folder uploads in %d rounds); fsck: up to %d orphan blob files after a kill, %d at the end",
		cycles, midUpload, srv.starts, uploadErrs.Load(), countAcked(&acked), rounds.Load()+1, maxOrphans, orphans)
}

func countAcked(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// verifyCrash lists everything: each acknowledged folder complete with exact hashes; anything
// else visible must have exactly its uploaded content.
func verifyCrash(t *testing.T, login func() (*client.Client, error), want map[string][32]byte, acked *sync.Map, cycle int) {
	t.Helper()
	var c *client.Client
	var err error
	for try := 0; try < 50; try++ {
		if c, err = login(); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("cycle %d: login: %v", cycle, err)
	}
	seen := map[string]bool{}
	err = c.Walk(context.Background(), "/", func(e *client.Entry) error {
		if e.IsDir {
			return nil
		}
		p := e.Path
		if strings.HasPrefix(p, "/r") {
			if i := strings.Index(p[1:], "/"); i > 0 {
				p = p[1+i:]
			}
		}
		w, ok := want[p]
		if !ok {
			return fmt.Errorf("unexpected file %s", e.Path)
		}
		if e.Hash != w {
			return fmt.Errorf("%s has other content (size %d)", e.Path, e.Size)
		}
		seen[e.Path] = true
		return nil
	})
	if err != nil {
		t.Fatalf("cycle %d: walk: %v", cycle, err)
	}
	acked.Range(func(k, _ any) bool {
		key := k.(string)
		folder := key[strings.LastIndex(key, "/")+1:]
		for p := range want {
			if strings.HasPrefix(p, "/"+folder+"/") && !seen["/"+key+p[len(folder)+1:]] {
				t.Errorf("cycle %d: acknowledged %s is missing", cycle, "/"+key+p[len(folder)+1:])
			}
		}
		return true
	})
}
