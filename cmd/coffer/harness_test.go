package main

// End-to-end test harness: TestMain builds the real binary once; tests run `coffer serve` as a
// subprocess and drive the client commands through the binary, each with its own
// COFFER_CONFIG_DIR.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the coffer binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coffer-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "coffer")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build coffer:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testServer is a `coffer serve` subprocess.
type testServer struct {
	t       testing.TB
	dataDir string
	addr    string // host:port, stable across restarts
	url     string
	flags   []string
	http    *http.Client // for /healthz

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *bytes.Buffer
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServer runs `coffer serve --data DIR --listen ADDR flags...` and waits for /healthz. It
// is stopped (SIGTERM) at the end of the test.
func startServer(t testing.TB, flags ...string) *testServer {
	t.Helper()
	s := &testServer{t: t, dataDir: filepath.Join(t.TempDir(), "data"), addr: freeAddr(t), flags: flags}
	s.url = "http://" + s.addr
	for i, f := range flags {
		if f == "--tls-cert" && i+1 < len(flags) {
			s.url = "https://" + s.addr
			s.http = tlsClient(t, flags[i+1])
		}
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) start() {
	s.t.Helper()
	s.mu.Lock()
	args := append([]string{"serve", "--data", s.dataDir, "--listen", s.addr}, s.flags...)
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "HOME="+s.dataDir)
	s.stderr = &bytes.Buffer{}
	cmd.Stderr = &lockedWriter{w: s.stderr, mu: &s.mu}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatal(err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	s.mu.Unlock()

	deadline := time.Now().Add(15 * time.Second)
	for {
		hc := s.http
		if hc == nil {
			hc = http.DefaultClient
		}
		resp, err := hc.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-done:
			s.t.Fatalf("coffer serve exited early: %s", s.log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("coffer serve not healthy after 15 s: %v\n%s", err, s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(s.log(), "coffer: serving on "+s.url) {
		s.t.Errorf("serve did not announce %q on stderr:\n%s", "coffer: serving on "+s.url, s.log())
	}
}

func (s *testServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// stop shuts the server down with SIGTERM and waits (graceful shutdown must exit 0).
func (s *testServer) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			s.t.Errorf("coffer serve exited %d after SIGTERM:\n%s", code, s.log())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		s.t.Errorf("coffer serve did not stop within 30 s of SIGTERM")
	}
}

// kill9 kills the server with SIGKILL (no chance to clean up).
func (s *testServer) kill9() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	cmd.Process.Kill()
	<-done
}

// safeBuffer is a bytes.Buffer safe to read while a subprocess writes to it.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// user is one client machine: its own COFFER_CONFIG_DIR, a server URL and a password.
type user struct {
	t         testing.TB
	configDir string
	server    string
	password  string
	env       []string // extra environment
}

func newUser(t testing.TB, server, password string) *user {
	return &user{t: t, configDir: t.TempDir(), server: server, password: password}
}

// with returns a copy of u that reports failures to t (for subtests).
func (u *user) with(t testing.TB) *user {
	c := *u
	c.t = t
	return &c
}

// result is one finished command.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("coffer %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// command prepares `coffer args...` with the user's environment; stdin is empty (not a tty).
func (u *user) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binPath, args...)
	env := []string{"HOME=" + u.configDir, "PATH=" + os.Getenv("PATH"),
		"COFFER_CONFIG_DIR=" + u.configDir, "COFFER_SERVER=" + u.server}
	if u.password != "" {
		env = append(env, "COFFER_PASSWORD="+u.password)
	}
	cmd.Env = append(env, u.env...)
	return cmd
}

// run runs a command to completion with a 2-minute safety timeout.
func (u *user) run(args ...string) result {
	return u.runIn(nil, args...)
}

func (u *user) runIn(stdin io.Reader, args ...string) result {
	u.t.Helper()
	cmd := u.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	r := result{args: args, stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		u.t.Fatalf("%s: %v", r, err)
	}
	return r
}

// ok runs a command that must succeed and returns its stdout.
func (u *user) ok(args ...string) string {
	u.t.Helper()
	r := u.run(args...)
	if r.code != 0 {
		u.t.Fatalf("want exit 0, got %s", r)
	}
	return r.stdout
}

// fails runs a command that must exit with code and a "coffer: " error line on stderr.
func (u *user) fails(code int, args ...string) result {
	u.t.Helper()
	r := u.run(args...)
	if r.code != code {
		u.t.Fatalf("want exit %d, got %s", code, r)
	}
	if !strings.HasPrefix(r.stderr, "coffer: ") || strings.Contains(r.stderr, "goroutine ") {
		u.t.Fatalf("want a one-line \"coffer: ...\" error, got %s", r)
	}
	return r
}

// jsonOut runs a command that must succeed and decodes its stdout into v.
func (u *user) jsonOut(v any, args ...string) {
	u.t.Helper()
	out := u.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		u.t.Fatalf("coffer %s: stdout is not JSON (%v): %q", strings.Join(args, " "), err, out)
	}
}

// writeFile creates a file with content and returns its path.
func writeFile(t testing.TB, path string, content []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// treeDigest maps every regular file below root (relative slash paths) to its SHA-256, and every
// folder to "dir".
func treeDigest(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails unless the two local trees hold the same folders and file contents.
func sameTree(t testing.TB, want, got string) {
	t.Helper()
	w, g := treeDigest(t, want), treeDigest(t, got)
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: want %s, got %q", k, v, g[k])
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s: unexpected in download", k)
		}
	}
}

// waitFor polls cond every 5 ms until it is true or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "coffer test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

// tlsClient trusts only the certificate in certFile.
func tlsClient(t testing.TB, certFile string) *http.Client {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("bad test certificate")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
