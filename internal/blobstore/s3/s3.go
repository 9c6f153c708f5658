// Package s3 is a blobstore.Store on an S3-compatible object store (AWS S3, MinIO, versitygw,
// Ceph RGW, Garage…), through github.com/minio/minio-go/v7.
//
// Object keys, under the configured prefix:
//
//	blobs/ab/abcd…(64 hex digits)   the blob whose ID starts with byte 0xab
//	tmp/…                           uploads in progress of earlier versions (swept by New)
//
// The two-hex-digit fan-out keeps directory-backed servers (versitygw posix, MinIO on a file
// system) from holding every blob in one directory and spreads AWS request-rate partitions; it
// does not change the listing order, which is ascending by key and so by ID.
//
// # Put never makes a wrong blob visible and never replaces one
//
// Put is one conditional PUT straight to the blob's key, preceded by a HEAD: a blob already
// stored is not uploaded again (Put only reads its reader through to check it). The PUT carries
// If-None-Match: *, so S3 refuses it (412) if a concurrent Put stored the key in the meantime: a
// stored blob is never replaced. The body is streamed with its exact size (no buffering) through
// a reader that computes the CRC-32C and holds back the last bytes until it has checked them and
// that the source ends there; on a mismatch it fails instead, so the PUT never completes and S3,
// whose writes are atomic, stores nothing. That check needs nothing from the S3 server. Readers
// see a whole blob or none, and the PUT has succeeded (is durable) before Put returns nil.
//
// The no-replace guarantee against a concurrent Put relies on the server honouring If-None-Match
// on PUT (AWS S3, MinIO, versitygw and Ceph RGW do; the conformance suite checks it). On a server
// that ignores it, only the HEAD protects a stored blob, which leaves a race between two Puts of
// one ID with different bytes.
//
// Put is limited to 5 GiB, S3's single PUT limit (blobs are a few MiB). Earlier versions
// uploaded into "<prefix>tmp/" first; New still deletes stale objects there (Config.StaleTempAge).
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
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
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
// from ever being visible under an ID and never replaces a stored blob.
func (s *Store) Put(ctx context.Context, id coffer.BlobID, r io.Reader, size int64, crc uint32) (bool, error) {
	if size < 0 {
		return false, fmt.Errorf("s3: put: negative size %d: %w", size, coffer.ErrInvalid)
	}
	if size > MaxBlobSize {
		return false, fmt.Errorf("s3: put: size %d exceeds the %d-byte limit: %w", size, int64(MaxBlobSize), coffer.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("s3: put: %w", err)
	}
	cr := &checkReader{ctx: ctx, r: r, left: size, want: crc}
	key := s.key(id)
	if _, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{}); err == nil {
		return false, cr.finish(id) // stored already: only check what r holds
	} else if err := mapErr(ctx, err); !errors.Is(err, coffer.ErrNotFound) {
		return false, fmt.Errorf("s3: put: blob %s: %w", id, err)
	}
	opts := minio.PutObjectOptions{
		DisableMultipart: true,
		ContentType:      "application/octet-stream",
		// An empty body with a streaming signature goes out as an HTTP chunked body that
		// versitygw misparses (it answers a stray 400 on the connection). There is nothing to
		// sign in an empty body anyway.
		DisableContentSha256: size == 0,
	}
	opts.SetMatchETagExcept("*") // If-None-Match: * — never replace a blob stored meanwhile
	if size == 0 {
		// The transport reads nothing from an empty body: check r before the PUT.
		if err := cr.finish(id); err != nil {
			return false, err
		}
		cr = &checkReader{ctx: ctx, r: strings.NewReader(""), done: true}
	}
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, key, cr, size, opts)
	res := cr.stop()
	switch {
	case ctx.Err() != nil:
		return false, fmt.Errorf("s3: put: %w", ctx.Err())
	case res.err != nil:
		return false, fmt.Errorf("s3: put: read: %w", res.err)
	case res.bad != nil:
		return false, fmt.Errorf("s3: put: blob %s: %w", id, res.bad)
	case isPreconditionFailed(err):
		return false, cr.finish(id) // stored meanwhile by another Put
	case err != nil:
		// A server refusing the conditional PUT early may close the connection while the body is
		// still being sent, so the 412 is lost in a reset: if the key exists now, another Put
		// stored it (or this one did after all, with the bytes checked above).
		if _, serr := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{}); serr == nil {
			return false, cr.finish(id)
		}
		return false, fmt.Errorf("s3: put: blob %s: upload: %w", id, mapErr(ctx, err))
	case !res.done:
		return false, fmt.Errorf("s3: put: blob %s: upload consumed %d of %d bytes: %w", id, res.n, size, coffer.ErrUnavailable)
	}
	return true, nil
}

// isPreconditionFailed reports S3's answer to a conditional PUT whose key exists (412), or that
// lost a race with a concurrent conditional write of the key (409 ConditionalRequestConflict).
func isPreconditionFailed(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && (resp.Code == "PreconditionFailed" || resp.Code == "ConditionalRequestConflict" ||
		resp.StatusCode == http.StatusPreconditionFailed)
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

// checkReader hands exactly left bytes of r to the uploader and holds back the last ones until
// it has checked them: a Read that would complete the body first checks the CRC-32C and that r
// ends there, and on a mismatch returns an error instead of those bytes. The uploader then never
// sends a whole body, so S3 stores nothing: no wrong blob becomes visible, whether or not the S3
// server checks anything. The HTTP transport may still read the body after PutObject returns, so
// the state is guarded and stop ends its use of r.
type checkReader struct {
	ctx  context.Context
	want uint32

	mu      sync.Mutex
	r       io.Reader
	left    int64
	n       int64
	sum     uint32
	done    bool  // every byte was handed over, after the checks passed
	bad     error // a failed check (wraps coffer.ErrCorrupt)
	err     error // r's first error other than io.EOF
	stopped bool
}

// checkResult is what stop reports.
type checkResult struct {
	n    int64
	done bool
	bad  error
	err  error
}

func (cr *checkReader) Read(p []byte) (int, error) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.stopped {
		return 0, errors.New("s3: upload body read after the upload ended")
	}
	return cr.read(p)
}

// read is Read with cr.mu held.
func (cr *checkReader) read(p []byte) (int, error) {
	if err := cr.ctx.Err(); err != nil {
		return 0, err
	}
	if cr.bad != nil {
		return 0, cr.bad
	}
	if cr.err != nil {
		return 0, cr.err
	}
	if cr.left == 0 {
		if !cr.done {
			if err := cr.complete(); err != nil {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > cr.left {
		p = p[:cr.left]
	}
	n, err := cr.r.Read(p)
	cr.sum = crc32.Update(cr.sum, blobstore.CRC32C, p[:n])
	cr.n += int64(n)
	cr.left -= int64(n)
	switch {
	case cr.left == 0:
		if err := cr.complete(); err != nil {
			return 0, err // hold these bytes back: the body stays incomplete
		}
		return n, nil
	case err == io.EOF:
		cr.bad = fmt.Errorf("reader yielded %d bytes, want %d: %w", cr.n, cr.n+cr.left, coffer.ErrCorrupt)
		return 0, cr.bad
	case err != nil:
		cr.err = err
		return 0, err
	}
	return n, nil
}

// complete checks, once all the declared bytes are read, that r ends there and that their CRC
// is the wanted one.
func (cr *checkReader) complete() error {
	var one [1]byte
	if k, err := io.ReadFull(cr.r, one[:]); k > 0 {
		cr.bad = fmt.Errorf("reader yielded more than the declared %d bytes: %w", cr.n, coffer.ErrCorrupt)
		return cr.bad
	} else if err != io.EOF {
		cr.err = err
		return err
	}
	if cr.sum != cr.want {
		cr.bad = fmt.Errorf("the bytes have CRC-32C %08x, want %08x: %w", cr.sum, cr.want, coffer.ErrCorrupt)
		return cr.bad
	}
	cr.done = true
	return nil
}

// stop ends all further reads by the uploader and reports how r was read.
func (cr *checkReader) stop() checkResult {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	cr.stopped = true
	return checkResult{n: cr.n, done: cr.done, bad: cr.bad, err: cr.err}
}

// finish reads the rest of r itself (after stop, or instead of an upload) and returns the
// result of the checks: nil, an error wrapping coffer.ErrCorrupt, or r's or ctx's error.
func (cr *checkReader) finish(id coffer.BlobID) error {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	buf := make([]byte, 64<<10)
	for {
		_, err := cr.read(buf)
		switch {
		case err == io.EOF:
			return nil
		case cr.bad != nil:
			return fmt.Errorf("s3: put: blob %s: %w", id, cr.bad)
		case cr.ctx.Err() != nil:
			return fmt.Errorf("s3: put: %w", cr.ctx.Err())
		case err != nil:
			return fmt.Errorf("s3: put: read: %w", err)
		}
	}
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
