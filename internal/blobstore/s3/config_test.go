package s3

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"coffer"
)

func TestParseURL(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = "aws-key", "aws-secret"
	cfg, err := parseURL("s3://bucket/some/prefix/?endpoint=127.0.0.1:7070&region=eu-west-1&insecure=1", getenv)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Endpoint: "127.0.0.1:7070", Bucket: "bucket", Prefix: "some/prefix", Region: "eu-west-1",
		Secure: false, AccessKey: "aws-key", SecretKey: "aws-secret"}
	if cfg != want {
		t.Fatalf("parseURL = %+v, want %+v", cfg, want)
	}

	env["COFFER_S3_ACCESS_KEY"], env["COFFER_S3_SECRET_KEY"] = "coffer-key", "coffer-secret"
	cfg, err = parseURL("s3://b2", getenv)
	if err != nil {
		t.Fatal(err)
	}
	want = Config{Endpoint: "s3.amazonaws.com", Bucket: "b2", Secure: true, AccessKey: "coffer-key", SecretKey: "coffer-secret"}
	if cfg != want {
		t.Fatalf("parseURL = %+v, want %+v (COFFER_S3_* wins over AWS_*)", cfg, want)
	}

	for _, bad := range []string{
		"http://bucket/prefix",
		"s3:///prefix",
		"s3://key:secret@bucket",
		"s3://bucket?endpoint=http://host:1",
		"s3://bucket?insecure=maybe",
		"s3://bucket?endpont=host",
		"s3://bucket?region=a&region=b",
		"s3://bucket#frag",
		"::",
	} {
		if _, err := parseURL(bad, getenv); !errors.Is(err, coffer.ErrInvalid) {
			t.Errorf("parseURL(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestNormalizePrefix(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a/", "/a/b": "a/b/", "a/": "a/"} {
		c, err := Config{Endpoint: "h:1", Bucket: "bkt", Prefix: in}.normalize()
		if err != nil || c.Prefix != want {
			t.Errorf("normalize(prefix %q) = %q, %v; want %q", in, c.Prefix, err, want)
		}
	}
}

func TestConfigLogsNoSecret(t *testing.T) {
	var b strings.Builder
	c := Config{Endpoint: "h:1", Bucket: "bkt", AccessKey: "AK", SecretKey: "very-secret-value"}
	slog.New(slog.NewTextHandler(&b, nil)).Info("store", "cfg", c)
	b.WriteString(c.String())
	if strings.Contains(b.String(), "very-secret-value") {
		t.Fatalf("config logged its secret: %s", b.String())
	}
}

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string][3]int64{
		"bytes 0-9/10": {0, 10, 1},
		"bytes 5-5/6":  {5, 6, 1},
		"bytes */10":   {0, 0, 0},
		"bytes 1-2":    {0, 0, 0},
		"items 1-2/3":  {0, 0, 0},
		"bytes -1-2/3": {0, 0, 0},
	} {
		f, tot, ok := parseContentRange(in)
		if got := [3]int64{f, tot, map[bool]int64{true: 1}[ok]}; got != want {
			t.Errorf("parseContentRange(%q) = %v, want %v", in, got, want)
		}
	}
}
