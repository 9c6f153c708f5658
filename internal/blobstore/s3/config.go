package s3

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"coffer"
)

// Config says where a Store keeps its blobs. The zero values of the optional fields are sensible
// defaults.
type Config struct {
	// Endpoint is the S3 server as host or host:port, without a scheme (e.g. "s3.amazonaws.com",
	// "127.0.0.1:7070"). Required.
	Endpoint string
	// Bucket must already exist. Required.
	Bucket string
	// AccessKey and SecretKey are the credentials; both empty means anonymous requests.
	AccessKey string
	SecretKey string
	// Region is the bucket's region; empty asks the server (one extra request, cached).
	Region string
	// Secure selects HTTPS. Plain HTTP is for loopback tests.
	Secure bool
	// Prefix is prepended to every object key (a trailing "/" is added if missing), so that one
	// bucket can hold several stores.
	Prefix string
	// StaleTempAge is how old an abandoned temporary upload object must be before New deletes it.
	// Zero means one hour; negative disables the sweep. It must exceed the longest Put.
	StaleTempAge time.Duration
	// Logger receives warnings (temporary objects that could not be removed). Nil means
	// slog.Default().
	Logger *slog.Logger
}

// LogValue implements slog.LogValuer. It never includes the secret key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("region", c.Region),
		slog.Bool("secure", c.Secure),
	)
}

// String describes the store without credentials, for messages.
func (c Config) String() string {
	scheme := "https"
	if !c.Secure {
		scheme = "http"
	}
	return fmt.Sprintf("s3://%s/%s (%s://%s)", c.Bucket, c.Prefix, scheme, c.Endpoint)
}

// ParseURL parses a store URL of the form
//
//	s3://bucket[/prefix][?endpoint=host:port&region=name&insecure=1]
//
// The endpoint defaults to s3.amazonaws.com; insecure=1 selects plain HTTP. Credentials never
// appear in the URL (it ends up in command lines and logs): they come from the environment,
// COFFER_S3_ACCESS_KEY and COFFER_S3_SECRET_KEY if set, else AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY. Unknown query parameters are an error wrapping coffer.ErrInvalid.
func ParseURL(s string) (Config, error) {
	return parseURL(s, os.Getenv)
}

func parseURL(s string, getenv func(string) string) (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("s3: store url: "+format+": %w", append(args, coffer.ErrInvalid)...)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("%v", err)
	}
	if u.Scheme != "s3" {
		return bad("scheme %q, want s3://bucket/prefix", u.Scheme)
	}
	if u.User != nil {
		return bad("credentials in the url are not accepted; set COFFER_S3_ACCESS_KEY and COFFER_S3_SECRET_KEY")
	}
	if u.Host == "" {
		return bad("no bucket (want s3://bucket/prefix)")
	}
	if u.Fragment != "" {
		return bad("unexpected fragment %q", u.Fragment)
	}
	cfg := Config{
		Endpoint: "s3.amazonaws.com",
		Bucket:   u.Host,
		Prefix:   strings.Trim(u.Path, "/"),
		Secure:   true,
	}
	for k, vs := range u.Query() {
		if len(vs) != 1 {
			return bad("parameter %q given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "endpoint":
			if v == "" || strings.Contains(v, "/") {
				return bad("endpoint %q: want host or host:port without a scheme", v)
			}
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "insecure":
			switch v {
			case "1", "true":
				cfg.Secure = false
			case "0", "false":
				cfg.Secure = true
			default:
				return bad("insecure=%q: want 1 or 0", v)
			}
		default:
			return bad("unknown parameter %q (known: endpoint, region, insecure)", k)
		}
	}
	cfg.AccessKey, cfg.SecretKey = getenv("COFFER_S3_ACCESS_KEY"), getenv("COFFER_S3_SECRET_KEY")
	if cfg.AccessKey == "" && cfg.SecretKey == "" {
		cfg.AccessKey, cfg.SecretKey = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	}
	return cfg, nil
}

// normalize checks cfg and fills in defaults.
func (c Config) normalize() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("s3: config: "+format+": %w", append(args, coffer.ErrInvalid)...)
	}
	if c.Endpoint == "" {
		return bad("no endpoint")
	}
	if strings.Contains(c.Endpoint, "://") || strings.Contains(c.Endpoint, "/") {
		return bad("endpoint %q: want host or host:port without a scheme (set Secure for https)", c.Endpoint)
	}
	if c.Bucket == "" {
		return bad("no bucket")
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return bad("bucket %q: %v", c.Bucket, err)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return bad("access key and secret key must be given together")
	}
	c.Prefix = strings.TrimLeft(c.Prefix, "/")
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.StaleTempAge == 0 {
		c.StaleTempAge = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
