// Package s3 is a blobstore.Store on an S3-compatible object store (AWS S3, MinIO, versitygw,
// Ceph RGW, Garage…), through github.com/minio/minio-go/v7.
//
// Object keys, under the configured prefix:
//
//	blobs/ab/abcd…(64 hex digits)   the blob whose ID starts with byte 0xab
//	tmp/<32 hex digits>             uploads in progress
//
// The two-hex-digit fan-out keeps directory-backed servers (versitygw posix, MinIO on a file
// system) from holding every blob in one directory and spreads AWS request-rate partitions; it
// does not change the listing order, which is ascending by key and so by ID.
//
// # Put never makes a wrong blob visible
//
// A blob's ID is only known once all its bytes have been read, and a Put that claims an ID must
// not overwrite the good blob already stored under it. So Put streams the bytes, hashing them,
// into a fresh temporary object (one PUT with the exact size, no buffering), then checks the
// size and the SHA-256, and only then copies the temporary object to its final key with a
// server-side copy (conditional on the temporary object's ETag, so the bytes copied are the bytes
// hashed), and deletes the temporary object. A failed Put deletes its temporary object; one a
// crashed process left behind is deleted by a later New once it is older than
// Config.StaleTempAge. S3 writes and copies are atomic, so readers see a whole blob or none, and
// the PUT or copy has succeeded (is durable) before Put returns nil.
//
// The cost is three requests per Put (PUT, COPY, DELETE) and a server-side copy. A
// single-request PUT straight to the final key would rely on the server honouring
// x-amz-checksum-sha256 and If-None-Match, which not every S3-compatible server does.
//
// Put is limited to 5 GiB, S3's single PUT and single copy limit (blobs are a few MiB).
//
// # The bucket
//
// Use a bucket without versioning or object lock: on a versioned bucket Delete only adds a delete
// marker, so deleted blobs keep costing storage. A lifecycle rule expiring "<prefix>tmp/" objects
// after a day is a good belt to go with New's sweep.
//
// # Errors
//
// NoSuchKey is coffer.ErrNotFound, an unsatisfiable range coffer.ErrInvalid; throttling
// (SlowDown, 429, 503), other 5xx, request timeouts and network errors wrap
// coffer.ErrUnavailable. The store itself does not retry (minio-go's own retries are
// disabled); wrap it in the retry package, which retries exactly the ErrUnavailable errors.
package s3

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"coffer"
	"coffer/internal/blobstore"
)

// MaxBlobSize is the largest blob Put accepts: S3's limit for a single PUT and a single copy.
const MaxBlobSize = 5 << 30

// cleanupTimeout bounds the deletion of a temporary object after a failed or cancelled Put.
const cleanupTimeout = 30 * time.Second

// Store is a blobstore.Store on an S3 bucket. It is safe for concurrent use.
type Store struct {
	client *minio.Client
	core   minio.Core
	cfg    Config
	blobs  string // cfg.Prefix + "blobs/"
	tmp    string // cfg.Prefix + "tmp/"
	log    *slog.Logger
}

var _ blobstore.Store = (*Store)(nil)

// New connects to the bucket, checks that it exists (an error wrapping coffer.ErrNotFound if it
// does not) and deletes temporary objects older than cfg.StaleTempAge (failures to do so are
// only logged). A bad cfg is an error wrapping coffer.ErrInvalid.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		creds = credentials.New(&credentials.Static{Value: credentials.Value{SignerType: credentials.SignatureAnonymous}})
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      creds,
		Secure:     cfg.Secure,
		Region:     cfg.Region,
		MaxRetries: 1, // retries belong to the retry package, which knows what is safe to retry
	})
	if err != nil {
		return nil, fmt.Errorf("s3: new %s: %w: %w", cfg, coffer.ErrInvalid, err)
	}
	s := &Store{
		client: client,
		core:   minio.Core{Client: client},
		cfg:    cfg,
		blobs:  cfg.Prefix + "blobs/",
		tmp:    cfg.Prefix + "tmp/",
		log:    cfg.Logger.With("blobstore", "s3", "bucket", cfg.Bucket),
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3: new %s: %w", cfg, mapErr(ctx, err))
	}
	if !ok {
		return nil, fmt.Errorf("s3: new %s: bucket %q does not exist: %w", cfg, cfg.Bucket, coffer.ErrNotFound)
	}
	if cfg.StaleTempAge > 0 {
		if n, err := s.SweepTemp(ctx, cfg.StaleTempAge); err != nil {
			s.log.Warn("s3: sweeping stale temporary objects failed", "err", err)
		} else if n > 0 {
			s.log.Info("s3: deleted stale temporary objects", "count", n)
		}
	}
	return s, nil
}

// key returns the object key of a blob.
func (s *Store) key(id coffer.BlobID) string {
	h := id.String()
	return s.blobs + h[:2] + "/" + h
}

// Put implements blobstore.Store; see the package documentation for how it keeps wrong bytes
// from ever being visible under an ID.
func (s *Store) Put(ctx context.Context, id coffer.BlobID, r io.Reader, size int64) (coffer.BlobID, error) {
	if size < 0 {
		return coffer.BlobID{}, fmt.Errorf("s3: put: negative size %d: %w", size, coffer.ErrInvalid)
	}
	if size > MaxBlobSize {
		return coffer.BlobID{}, fmt.Errorf("s3: put: size %d exceeds the %d-byte limit: %w", size, int64(MaxBlobSize), coffer.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return coffer.BlobID{}, fmt.Errorf("s3: put: %w", err)
	}
	var rnd [16]byte
	rand.Read(rnd[:])
	tmp := s.tmp + hex.EncodeToString(rnd[:])
	// From the PUT on, the temporary object may exist: remove it on every path, success included.
	defer s.removeTemp(ctx, tmp)

	hr := &hashReader{ctx: ctx, r: r, left: size, h: sha256.New()}
	info, err := s.client.PutObject(ctx, s.cfg.Bucket, tmp, hr, size, minio.PutObjectOptions{
		DisableMultipart: true,
		ContentType:      "application/octet-stream",
		// An empty body with a streaming signature goes out as an HTTP chunked body that
		// versitygw misparses (it answers a stray 400 on the connection). There is nothing to
		// sign in an empty body anyway.
		DisableContentSha256: size == 0,
	})
	n, short, rerr := hr.stop()
	switch {
	case ctx.Err() != nil:
		return coffer.BlobID{}, fmt.Errorf("s3: put: %w", ctx.Err())
	case rerr != nil:
		return coffer.BlobID{}, fmt.Errorf("s3: put: read: %w", rerr)
	case short:
		return coffer.BlobID{}, fmt.Errorf("s3: put: reader yielded %d bytes, want %d: %w", n, size, coffer.ErrCorrupt)
	case err != nil:
		return coffer.BlobID{}, fmt.Errorf("s3: put: upload: %w", mapErr(ctx, err))
	case n != size:
		return coffer.BlobID{}, fmt.Errorf("s3: put: upload consumed %d of %d bytes: %w", n, size, coffer.ErrUnavailable)
	}
	// The declared size must be the reader's whole content.
	var one [1]byte
	if k, err := io.ReadFull(r, one[:]); k > 0 {
		return coffer.BlobID{}, fmt.Errorf("s3: put: reader yielded more than the declared %d bytes: %w", size, coffer.ErrCorrupt)
	} else if err != io.EOF {
		return coffer.BlobID{}, fmt.Errorf("s3: put: read: %w", err)
	}
	sum := hr.sum()
	if !id.IsZero() && id != sum {
		return coffer.BlobID{}, fmt.Errorf("s3: put: blob %s: content hashes to %s: %w", id, sum, coffer.ErrCorrupt)
	}
	src := minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: tmp, MatchETag: info.ETag}
	dst := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: s.key(sum)}
	if _, err := s.client.CopyObject(ctx, dst, src); err != nil {
		if ctx.Err() != nil {
			return coffer.BlobID{}, fmt.Errorf("s3: put: %w", ctx.Err())
		}
		return coffer.BlobID{}, fmt.Errorf("s3: put: blob %s: copy into place: %w", sum, mapErr(ctx, err))
	}
	return sum, nil
}

// removeTemp deletes a temporary upload object, even if ctx is already cancelled. A failure is
// logged: the object is invisible to the Store API and a later SweepTemp deletes it.
func (s *Store) removeTemp(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		s.log.Warn("s3: put: could not delete temporary object", "key", key, "err", err)
	}
}

// SweepTemp deletes temporary upload objects last modified more than olderThan ago and returns
// how many it deleted. olderThan must exceed the longest Put, or it deletes uploads in flight
// (which then fail; nothing wrong becomes visible).
func (s *Store) SweepTemp(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	n := 0
	for obj := range s.client.ListObjectsIter(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.tmp, Recursive: true}) {
		if obj.Err != nil {
			return n, fmt.Errorf("s3: sweep temp: list: %w", mapErr(ctx, obj.Err))
		}
		if !obj.LastModified.Before(cutoff) {
			continue
		}
		if err := s.client.RemoveObject(ctx, s.cfg.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			return n, fmt.Errorf("s3: sweep temp: delete: %w", mapErr(ctx, err))
		}
		n++
	}
	if err := ctx.Err(); err != nil {
		return n, fmt.Errorf("s3: sweep temp: %w", err)
	}
	return n, nil
}

// hashReader hands at most left bytes of r to the uploader, hashing them, and records how r
// ended. The HTTP transport may still read the body after PutObject returns, so its state is
// guarded and stop ends its use of r.
type hashReader struct {
	ctx context.Context

	mu      sync.Mutex
	r       io.Reader
	left    int64
	n       int64
	h       hash.Hash
	short   bool  // r ended before left reached zero
	err     error // r's first error other than io.EOF
	stopped bool
}

func (hr *hashReader) Read(p []byte) (int, error) {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	if hr.stopped {
		return 0, errors.New("s3: upload body read after the upload ended")
	}
	if err := hr.ctx.Err(); err != nil {
		return 0, err
	}
	if hr.err != nil {
		return 0, hr.err
	}
	if hr.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > hr.left {
		p = p[:hr.left]
	}
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	hr.left -= int64(n)
	switch {
	case err == io.EOF && hr.left > 0:
		hr.short = true
		return n, io.ErrUnexpectedEOF
	case err == io.EOF:
		return n, io.EOF
	case err != nil:
		hr.err = err
		return n, err
	}
	return n, nil
}

// stop ends all further reads of r and reports how many bytes were read, whether r ended early,
// and r's error.
func (hr *hashReader) stop() (n int64, short bool, err error) {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	hr.stopped = true
	return hr.n, hr.short, hr.err
}

func (hr *hashReader) sum() coffer.BlobID {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	var id coffer.BlobID
	hr.h.Sum(id[:0])
	return id
}

// Get implements blobstore.Store. Most ranges cost one request; an empty range at the end of a
// blob and a zero-length range cost a second (HEAD) to tell a valid range from an invalid one.
func (s *Store) Get(ctx context.Context, id coffer.BlobID, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3: get: %w", err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3: get: blob %s: negative offset %d: %w", id, offset, coffer.ErrInvalid)
	}
	if length < 0 {
		length = -1
	}
	if length == 0 {
		return s.emptyRange(ctx, id, offset, length)
	}
	var opts minio.GetObjectOptions
	ranged := offset > 0 || length > 0
	if ranged {
		end := int64(0) // SetRange(offset, 0): from offset to the end
		if length > 0 {
			end = offset + length - 1
		}
		if offset == 0 && end == 0 {
			opts.Set("Range", "bytes=0-0") // SetRange(0, 0) would mean the whole object
		} else if err := opts.SetRange(offset, end); err != nil {
			return nil, fmt.Errorf("s3: get: blob %s: %w: %w", id, coffer.ErrInvalid, err)
		}
	}
	body, info, hdr, err := s.core.GetObject(ctx, s.cfg.Bucket, s.key(id), opts)
	if err != nil {
		if isInvalidRange(err) {
			// The range starts at or past the end: empty if exactly at the end and open-ended.
			return s.emptyRange(ctx, id, offset, length)
		}
		return nil, fmt.Errorf("s3: get: blob %s: %w", id, mapErr(ctx, err))
	}
	total, skip := info.Size, int64(0)
	if cr := hdr.Get("Content-Range"); cr != "" {
		first, t, ok := parseContentRange(cr)
		if !ok || first != offset {
			body.Close()
			return nil, fmt.Errorf("s3: get: blob %s: bad Content-Range %q for offset %d", id, cr, offset)
		}
		total = t
	} else if ranged {
		skip = offset // the server ignored the Range header and sent the whole blob
	}
	if offset > total || (length >= 0 && length > total-offset) {
		body.Close()
		return nil, fmt.Errorf("s3: get: blob %s: range [%d, +%d) outside its %d bytes: %w",
			id, offset, length, total, coffer.ErrInvalid)
	}
	if length < 0 {
		length = total - offset
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			body.Close()
			return nil, fmt.Errorf("s3: get: blob %s: %w", id, mapErr(ctx, err))
		}
	}
	return &getReader{ctx: ctx, body: body, left: length, id: id}, nil
}

// emptyRange answers a Get whose range holds no bytes: a zero-length range, or an open range
// starting at the end. It is valid if the blob exists and offset is at most its size.
func (s *Store) emptyRange(ctx context.Context, id coffer.BlobID, offset, length int64) (io.ReadCloser, error) {
	size, err := s.Stat(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("s3: get: %w", err)
	}
	if offset > size || (length > 0 && offset+length > size) || (length < 0 && offset != size) {
		return nil, fmt.Errorf("s3: get: blob %s: range [%d, +%d) outside its %d bytes: %w",
			id, offset, length, size, coffer.ErrInvalid)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// parseContentRange parses "bytes first-last/total".
func parseContentRange(s string) (first, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	f, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(f, 10, 64)
	total, err2 := strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || total < 0 {
		return 0, 0, false
	}
	return first, total, true
}

// getReader streams a Get's body, stops at the range's end, reports a body that ends early as an
// error, and maps transport errors (a reset connection wraps coffer.ErrUnavailable).
type getReader struct {
	ctx  context.Context
	body io.ReadCloser
	left int64
	id   coffer.BlobID
}

func (g *getReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.body.Read(p)
	g.left -= int64(n)
	if err == io.EOF {
		if g.left > 0 {
			return n, fmt.Errorf("s3: get: blob %s: body ended %d bytes early: %w: %w", g.id, g.left, coffer.ErrUnavailable, io.ErrUnexpectedEOF)
		}
		return n, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("s3: get: blob %s: read: %w", g.id, mapErr(g.ctx, err))
	}
	return n, nil
}

func (g *getReader) Close() error { return g.body.Close() }

// Stat implements blobstore.Store.
func (s *Store) Stat(ctx context.Context, id coffer.BlobID) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("s3: stat: %w", err)
	}
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(id), minio.StatObjectOptions{})
	if err != nil {
		return 0, fmt.Errorf("s3: stat: blob %s: %w", id, mapErr(ctx, err))
	}
	return info.Size, nil
}

// Delete implements blobstore.Store.
func (s *Store) Delete(ctx context.Context, id coffer.BlobID) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: delete: %w", err)
	}
	err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.key(id), minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(mapErr(ctx, err), coffer.ErrNotFound) {
		return fmt.Errorf("s3: delete: blob %s: %w", id, mapErr(ctx, err))
	}
	return nil
}

// List implements blobstore.Store. Keys that are not blob keys in their right place are skipped.
// It holds one listing page (up to 1,000 keys) at a time.
func (s *Store) List(ctx context.Context, fn func(id coffer.BlobID, size int64) error) error {
	opts := minio.ListObjectsOptions{Prefix: s.blobs, Recursive: true}
	for obj := range s.client.ListObjectsIter(ctx, s.cfg.Bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("s3: list: %w", mapErr(ctx, obj.Err))
		}
		id, ok := s.parseKey(obj.Key)
		if !ok {
			continue
		}
		if err := fn(id, obj.Size); err != nil {
			return err
		}
	}
	// The iterator ends silently when ctx is cancelled between pages.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list: %w", err)
	}
	return nil
}

// parseKey returns the ID of a key of the form blobs/ab/ab…, or false.
func (s *Store) parseKey(key string) (coffer.BlobID, bool) {
	rest, ok := strings.CutPrefix(key, s.blobs)
	if !ok || len(rest) != 3+64 || rest[2] != '/' || rest[:2] != rest[3:5] {
		return coffer.BlobID{}, false
	}
	name := rest[3:]
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return coffer.BlobID{}, false
		}
	}
	var id coffer.BlobID
	if _, err := hex.Decode(id[:], []byte(name)); err != nil {
		return coffer.BlobID{}, false
	}
	return id, true
}
