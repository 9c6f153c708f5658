package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"coffer/api"
	"coffer/client"
	"coffer/format"
)

// ---- shared PostgreSQL and S3 for the multi-node tests ----

// requireService returns the environment variable's value, skipping without it (failing in CI).
func requireService(t testing.TB, env, script string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (source %s)", env, script)
		}
		t.Skipf("%s is not set; skipping (source %s to run this test)", env, script)
	}
	return v
}

// freshPG creates an empty database on the COFFER_TEST_POSTGRES server, dropped at cleanup, and
// returns its DSN.
func freshPG(t testing.TB) string {
	t.Helper()
	base := requireService(t, "COFFER_TEST_POSTGRES", "scripts/pg.sh")
	var b [6]byte
	rand.Read(b[:])
	name := "coffer_srv_" + hex.EncodeToString(b[:])
	pgAdmin(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { pgAdmin(t, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("COFFER_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func pgAdmin(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("postgres admin: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("postgres admin: %s: %v", sql, err)
	}
}

// freshS3 creates a bucket on the COFFER_TEST_S3 server (emptied and removed at cleanup), sets the
// credential variables and returns an s3:// store URL with the given prefix.
func freshS3(t *testing.T, prefix string) string {
	t.Helper()
	raw := requireService(t, "COFFER_TEST_S3", "scripts/s3.sh")
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		t.Fatalf("COFFER_TEST_S3=%q: want http://key:secret@host:port", raw)
	}
	secret, _ := u.User.Password()
	t.Setenv("COFFER_S3_ACCESS_KEY", u.User.Username())
	t.Setenv("COFFER_S3_SECRET_KEY", secret)
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(u.User.Username(), secret, ""),
		Secure: u.Scheme == "https", Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	bucket := "coffer-srv-" + hex.EncodeToString(b[:])
	if err := c.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		objs := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for e := range c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
			t.Logf("cleanup: remove %s: %v", e.ObjectName, e.Err)
		}
		c.RemoveBucket(ctx, bucket)
	})
	insecure := ""
	if u.Scheme == "http" {
		insecure = "&insecure=1"
	}
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + u.Host + "&region=us-east-1" + insecure
}

// node starts one server node on the shared stores (as Serve wires them) and returns it as an env
// for the protocol helpers. meta and blobs of the env stay nil.
func node(t *testing.T, db, blobs string) *env {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := OpenStores(ctx, StoreConfig{DataDir: t.TempDir(), DB: db, Blobs: blobs, Cluster: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	secret, err := st.Secret(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Meta: st.Meta, Blobs: st.Blobs, Logger: log, Secret: secret}
	st.apply(&cfg)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, logs: logs, clock: &clock{t: time.Now()}}
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); e.ts.Close() })
	return e
}

// on returns a copy of u that talks to node e (same session: sessions live in the shared store).
func (u *user) on(e *env) *user {
	c := *u
	c.e = e
	return &c
}

// TestMultiNode runs two nodes on one PostgreSQL database and one S3 bucket: change events cross
// nodes within a second, a login started on one node finishes on the other exactly once, the
// nodes share the server secret, and client-library users on different nodes converge.
func TestMultiNode(t *testing.T) {
	db := freshPG(t)
	blobs := freshS3(t, "cluster")
	n1, n2 := node(t, db, blobs), node(t, db, blobs)

	t.Run("change stream across nodes", func(t *testing.T) {
		u1 := n1.signup("alice")
		u2 := u1.on(n2)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", n1.ts.URL+"/v1/changes/stream", nil)
		req.Header.Set("Authorization", "Bearer "+u1.token)
		resp, err := n1.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		events := sseEvents(t, resp)
		if ev := <-events; ev.Seq != 1 { // the sign-up commit, caught up
			t.Fatalf("catch-up event %+v", ev)
		}
		for i := range 3 {
			start := time.Now()
			cr := u2.commit(u2.folder(u2.root, fmt.Sprint("via-node-2-", i)))
			select {
			case ev := <-events:
				if ev.Seq != cr.Seq || ev.Tree != u1.tree() {
					t.Fatalf("event %+v, want seq %d", ev, cr.Seq)
				}
				if d := time.Since(start); d > time.Second {
					t.Fatalf("event took %v, want < 1 s", d)
				}
			case <-time.After(time.Second):
				t.Fatalf("no event on node 1 within 1 s of commit %d on node 2", cr.Seq)
			}
		}
	})

	t.Run("login challenge spent across nodes", func(t *testing.T) {
		u := n1.signup("bob")
		var pre api.PreloginResponse
		if st, ae := n1.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: u.name}, &pre); st != 200 {
			t.Fatalf("login start: %d %+v", st, ae)
		}
		keys := format.DerivePasswordKeys(u.password, fromAPIKDF(pre.KDF))
		sig := ed25519.Sign(keys.Login, format.LoginMessage(pre.Account, u.name, [32]byte(pre.Challenge), format.ProofLogin))
		req := api.LoginRequest{Username: u.name, Challenge: pre.Challenge, Signature: sig, Device: "x"}
		var resp api.LoginResponse
		if st, ae := n2.call("POST", "/v1/login/finish", "", req, &resp); st != 200 {
			t.Fatalf("finish on the other node: %d %+v", st, ae)
		}
		// Replaying the same answer on either node fails: the challenge is spent cluster-wide.
		for _, n := range []*env{n1, n2} {
			st, ae := n.call("POST", "/v1/login/finish", "", req, nil)
			wantErr(t, st, ae, 401, api.CodeLoginFailed)
		}
		// Unknown usernames get the same fake answer from both nodes (shared secret).
		var f1, f2 api.PreloginResponse
		n1.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: "nobody-here"}, &f1)
		n2.call("POST", "/v1/login/start", "", api.PreloginRequest{Username: "nobody-here"}, &f2)
		if f1.Account != f2.Account || !bytes.Equal(f1.KDF.Salt, f2.KDF.Salt) {
			t.Fatal("nodes give different fake prelogin answers: the secret is not shared")
		}
	})

	t.Run("clients on different nodes converge", func(t *testing.T) {
		ctx := context.Background()
		cfg := func(e *env) client.Config {
			return client.Config{Server: e.ts.URL, StateDir: t.TempDir(), KDF: cheapKDF(), MinKDF: cheapKDF(),
				Logger: slog.New(slog.DiscardHandler)}
		}
		c1, err := client.Signup(ctx, cfg(n1), client.SignupOptions{Username: "carol", Password: []byte("pw carol"), Device: "one"})
		if err != nil {
			t.Fatal(err)
		}
		c2, err := client.Login(ctx, cfg(n2), "carol", []byte("pw carol"), "two")
		if err != nil {
			t.Fatal(err)
		}
		local := t.TempDir()
		files := map[string][]byte{}
		for i := range 6 {
			name := fmt.Sprintf("f%d.bin", i)
			data := make([]byte, 1000+i*7000)
			rand.Read(data)
			files[name] = data
			if err := os.WriteFile(filepath.Join(local, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		work := func(c *client.Client, dir string, names []string) {
			defer wg.Done()
			if _, err := c.Mkdir(ctx, "/"+dir, false); err != nil {
				errs <- fmt.Errorf("%s: mkdir: %w", dir, err)
				return
			}
			for _, n := range names {
				if _, err := c.Upload(ctx, []string{filepath.Join(local, n)}, "/"+dir, client.TransferOptions{}); err != nil {
					errs <- fmt.Errorf("%s: upload %s: %w", dir, n, err)
					return
				}
			}
			if err := c.Move(ctx, "/"+dir+"/"+names[0], "/"+dir+"/moved-"+names[0]); err != nil {
				errs <- fmt.Errorf("%s: move: %w", dir, err)
			}
			if err := c.Remove(ctx, "/"+dir+"/"+names[1]); err != nil {
				errs <- fmt.Errorf("%s: remove: %w", dir, err)
			}
		}
		wg.Add(2)
		go work(c1, "one", []string{"f0.bin", "f1.bin", "f2.bin"})
		go work(c2, "two", []string{"f3.bin", "f4.bin", "f5.bin"})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
		want := map[string][]string{
			"/one": {"f2.bin", "moved-f0.bin"},
			"/two": {"f5.bin", "moved-f3.bin"},
		}
		for _, c := range []*client.Client{c1, c2} {
			for dir, names := range want {
				es, err := c.List(ctx, dir)
				if err != nil {
					t.Fatalf("list %s: %v", dir, err)
				}
				var got []string
				for _, e := range es {
					got = append(got, e.Name)
				}
				slices.Sort(got)
				if !slices.Equal(got, names) {
					t.Fatalf("list %s: %v, want %v", dir, got, names)
				}
				for _, n := range names {
					var buf bytes.Buffer
					if err := c.Cat(ctx, dir+"/"+n, &buf); err != nil {
						t.Fatalf("cat %s/%s: %v", dir, n, err)
					}
					if !bytes.Equal(buf.Bytes(), files[strings.TrimPrefix(n, "moved-")]) {
						t.Fatalf("cat %s/%s: wrong content", dir, n)
					}
				}
			}
		}
	})

	t.Run("readyz and metrics", func(t *testing.T) {
		resp := n1.request("GET", "/readyz", "", nil)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("readyz: %d", resp.StatusCode)
		}
	})
}
