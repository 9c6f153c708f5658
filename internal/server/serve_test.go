package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coffer/api"
)

func TestServeAndShutdown(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeConfig{
			DataDir: dir, Listen: "127.0.0.1:0", InviteOnly: true,
			Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
			OnListen: func(u string) { urls <- u },
		})
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not start")
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
	mustContain(t, logs.String(), `"msg":"listening"`)
	mustContain(t, logs.String(), url)

	// The secret file exists, 0600, 32 bytes of hex.
	st, err := os.Stat(filepath.Join(dir, "server.secret"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", st, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "server.secret"))
	if b, err := hex.DecodeString(strings.TrimSpace(string(raw))); err != nil || len(b) != 32 {
		t.Fatalf("secret: %v", err)
	}

	// An invite made while the server runs lets a user sign up.
	code, err := CreateInvite(ctx, dir)
	if err != nil || len(code) != 24 {
		t.Fatalf("invite %q: %v", code, err)
	}

	// A stream needs a session.
	req, _ := http.NewRequest("GET", url+"/v1/changes/stream", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("x", 43))
	if r, err := http.DefaultClient.Do(req); err == nil {
		r.Body.Close()
		if r.StatusCode != 401 {
			t.Fatalf("stream without a session: %d", r.StatusCode)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(35 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
	mustContain(t, logs.String(), `"msg":"stopped"`)
}

func TestServeShutdownEndsStreams(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeConfig{DataDir: dir, Listen: "127.0.0.1:0",
			Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
			OnListen: func(u string) { urls <- u }})
	}()
	url := <-urls
	// Sign up through the real server with the test client, then hold a stream open.
	e := &env{t: t}
	_, sreq := e.newUser("alice")
	var lr api.LoginResponse
	if st := postJSON(t, url+"/v1/signup", "", sreq, &lr); st != 200 {
		t.Fatalf("signup: %d", st)
	}
	req, _ := http.NewRequest("GET", url+"/v1/changes/stream", nil)
	req.Header.Set("Authorization", "Bearer "+lr.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v", err)
	}
	defer resp.Body.Close()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve waited for the open stream")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if _, err := io.ReadAll(resp.Body); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Logf("stream ended with %v", err)
	}
}

func postJSON(t *testing.T, url, token string, in, out any) int {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestFsck(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	e.signup("bob") // a tree without blobs is checked too
	ctx := context.Background()
	var ids []string
	for _, s := range []string{"one", "two", "three"} {
		p, st, _ := u.upload([]byte(s))
		if st != 200 {
			t.Fatal("upload")
		}
		ids = append(ids, p.Blob.String())
		u.commit(u.file(u.root, s, p.Blob))
	}
	var out bytes.Buffer
	n, err := Fsck(ctx, e.dir, &out)
	if err != nil || n != 0 {
		t.Fatalf("clean fsck: %d %v\n%s", n, err, out.String())
	}
	mustContain(t, out.String(), "2 trees: 0 problems")

	blobPath := func(id string) string { return filepath.Join(e.dir, "blobs", id[0:2], id[2:4], id) }
	if err := os.WriteFile(blobPath(ids[0]), []byte("ONE"), 0o600); err != nil { // same size, other bytes
		t.Fatal(err)
	}
	if err := os.Remove(blobPath(ids[1])); err != nil {
		t.Fatal(err)
	}
	orphan := strings.Repeat("ab", 32)
	os.MkdirAll(filepath.Dir(blobPath(orphan)), 0o700)
	if err := os.WriteFile(blobPath(orphan), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	n, err = Fsck(ctx, e.dir, &out)
	if err != nil || n != 2 { // the orphan is a note, not a problem
		t.Fatalf("fsck: %d %v\n%s", n, err, out.String())
	}
	mustContain(t, out.String(), ids[0]+": content does not match its recorded CRC-32C (corrupt)")
	mustContain(t, out.String(), ids[1]+": recorded (3 bytes) but missing")
	mustContain(t, out.String(), "note: blob "+orphan+": orphan file")

	if _, err := Fsck(ctx, filepath.Join(e.dir, "nope"), &out); err == nil {
		t.Fatal("fsck of a missing directory succeeded")
	}

	// A folder summary that does not match the records (written past the validation) is caught.
	h, err := e.meta.Head(ctx, u.tree())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := u.build(u.folder(u.root, "x"))
	c, err := e.srv.validateCommit(ctx, commitTarget{tree: u.tree(), owner: u.acct,
		writer: u.signer.Public().(ed25519.PublicKey), base: &h}, &req)
	if err != nil {
		t.Fatal(err)
	}
	c.Folders[0].Root[0] ^= 1
	if _, err := e.meta.Commit(ctx, *c); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	n, err = Fsck(ctx, e.dir, &out)
	if err != nil || n != 3 {
		t.Fatalf("fsck: %d %v\n%s", n, err, out.String())
	}
	mustContain(t, out.String(), "stored folder summaries differ")
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	// A bad key pair fails before listening.
	if err := Serve(context.Background(), ServeConfig{DataDir: filepath.Join(dir, "d"), Listen: "127.0.0.1:0",
		TLSCert: certFile, TLSKey: certFile, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("bad key accepted")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeConfig{DataDir: filepath.Join(dir, "d"), Listen: "127.0.0.1:0",
			TLSCert: certFile, TLSKey: keyFile, Logger: slog.New(slog.DiscardHandler),
			OnListen: func(u string) { urls <- u }})
	}()
	url := <-urls
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("url %q", url)
	}
	pool := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(der)
	pool.AddCert(cert)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz over TLS: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
