package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// service returns the environment variable's value, skipping without it (failing in CI).
func service(t *testing.T, env, script string) string {
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

// TestServeTwoNodes runs two `coffer serve` processes on one PostgreSQL database and one S3
// bucket: an account made through one node works through the other.
// Not parallel: the nodes inherit the S3 credentials through t.Setenv.
func TestServeTwoNodes(t *testing.T) {
	base := service(t, "COFFER_TEST_POSTGRES", "scripts/pg.sh")
	rawS3 := service(t, "COFFER_TEST_S3", "scripts/s3.sh")
	ctx := context.Background()
	var b [6]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])

	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE coffer_cli_"+suffix); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS coffer_cli_"+suffix+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	pu, _ := url.Parse(base)
	pu.Path = "/coffer_cli_" + suffix
	db := pu.String()

	su, err := url.Parse(rawS3)
	if err != nil || su.User == nil {
		t.Fatalf("COFFER_TEST_S3=%q", rawS3)
	}
	secret, _ := su.User.Password()
	mc, err := minio.New(su.Host, &minio.Options{Creds: credentials.NewStaticV4(su.User.Username(), secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	bucket := "coffer-cli-" + suffix
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for range mc.RemoveObjects(ctx, bucket, mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}), minio.RemoveObjectsOptions{}) {
		}
		mc.RemoveBucket(ctx, bucket)
	})
	blobs := "s3://" + bucket + "/nodes?endpoint=" + su.Host + "&region=us-east-1&insecure=1"

	// The S3 credentials come from the environment (the server processes inherit it).
	t.Setenv("COFFER_S3_ACCESS_KEY", su.User.Username())
	t.Setenv("COFFER_S3_SECRET_KEY", secret)
	n1 := startServer(t, "--db", db, "--blobs", blobs)
	n2 := startServer(t, "--db", db, "--blobs", blobs)
	if !strings.Contains(n1.log(), `"multi_node":true`) || strings.Contains(n1.log(), secret) {
		t.Fatalf("node log:\n%s", n1.log())
	}
	alice := newUser(t, n1.url, "pw for alice")
	alice.ok("signup", "alice")
	content := randomBytes(t, 300000)
	alice.ok("put", writeFile(t, filepath.Join(t.TempDir(), "f.bin"), content), "/f.bin")
	other := newUser(t, n2.url, "pw for alice")
	other.ok("login", "alice")
	if got := other.ok("cat", "/f.bin"); got != string(content) {
		t.Fatal("content differs through the other node")
	}
	other.ok("mv", "/f.bin", "/g.bin")
	if out := alice.ok("ls", "/"); !strings.Contains(out, "g.bin") || strings.Contains(out, "f.bin") {
		t.Fatalf("ls through node 1 after a move through node 2: %q", out)
	}
	for _, n := range []*testServer{n1, n2} {
		if _, err := os.Stat(filepath.Join(n.dataDir, "meta.db")); err == nil {
			t.Fatal("a node created SQLite data although --db is PostgreSQL")
		}
	}
}
