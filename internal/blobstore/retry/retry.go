// Package retry is a blobstore.Store decorator that retries temporary failures (errors wrapping
// coffer.ErrUnavailable: throttling, 5xx, timeouts, reset connections) with exponential back-off
// and jitter. Everything else (ErrNotFound, ErrCorrupt, ErrInvalid, context errors, errors from
// the caller's reader or List callback) is returned at once.
//
// What is retried, and how it stays correct:
//
//   - Put, only if the reader is an io.Seeker: it is rewound to where it was when Put was called.
//     A reader that cannot be rewound (an HTTP request body) is never re-read: the first error is
//     returned. Re-putting is safe because Put is idempotent.
//   - Get: opening, and reading. A read that fails with a retryable error reopens the blob at the
//     first byte not yet delivered (blobs are immutable, so the bytes are the same).
//   - Stat and Delete (idempotent).
//   - List: a retried listing skips IDs up to the last one already given to fn, so fn still sees
//     each blob once, in ascending order.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"coffer"
	"coffer/internal/blobstore"
)

// Config tunes the back-off. Zero fields take the defaults.
type Config struct {
	// Attempts is the number of tries per operation, the first included (default 4). For a Get's
	// reads it is the number of tries without progress.
	Attempts int
	// BaseDelay is the wait before the first retry (default 100 ms); each retry doubles it.
	BaseDelay time.Duration
	// MaxDelay caps the wait (default 5 s).
	MaxDelay time.Duration
	// Logger receives one warning per retry. Nil means slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultAttempts  = 4
	DefaultBaseDelay = 100 * time.Millisecond
	DefaultMaxDelay  = 5 * time.Second
)

type store struct {
	inner blobstore.Store
	cfg   Config
}

// New wraps inner. The result is safe for concurrent use if inner is.
func New(inner blobstore.Store, cfg Config) blobstore.Store {
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = DefaultBaseDelay
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	if cfg.MaxDelay < cfg.BaseDelay {
		cfg.MaxDelay = cfg.BaseDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &store{inner: inner, cfg: cfg}
}

// Retryable reports whether err is a temporary failure worth retrying: it wraps
// coffer.ErrUnavailable and none of ErrNotFound, ErrCorrupt, ErrInvalid or a context error.
func Retryable(err error) bool {
	return err != nil && errors.Is(err, coffer.ErrUnavailable) &&
		!errors.Is(err, coffer.ErrNotFound) && !errors.Is(err, coffer.ErrCorrupt) &&
		!errors.Is(err, coffer.ErrInvalid) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// delay returns the wait before retry number n (0-based): BaseDelay·2ⁿ capped at MaxDelay, with
// "equal jitter" (uniform in its upper half), so that clients failing together spread out
// without any retry coming immediately.
func (s *store) delay(n int) time.Duration {
	d := s.cfg.MaxDelay
	if n < 30 {
		d = min(s.cfg.BaseDelay<<n, s.cfg.MaxDelay)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// wait sleeps before retry number n after err, or returns ctx's error wrapped with err's text.
func (s *store) wait(ctx context.Context, op string, n int, err error) error {
	d := s.delay(n)
	s.cfg.Logger.Warn("blobstore: retrying", "op", op, "retry", n+1, "of", s.cfg.Attempts-1, "delay", d, "err", err)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("retry: %s: %w (while waiting to retry after: %v)", op, ctx.Err(), err)
	case <-t.C:
		return nil
	}
}

// do runs fn until it succeeds, fails permanently or runs out of attempts.
func do[T any](ctx context.Context, s *store, op string, fn func() (T, error)) (T, error) {
	for n := 0; ; n++ {
		v, err := fn()
		if err == nil || !Retryable(err) || n+1 >= s.cfg.Attempts || ctx.Err() != nil {
			return v, err
		}
		if werr := s.wait(ctx, op, n, err); werr != nil {
			var zero T
			return zero, werr
		}
	}
}

// Put implements blobstore.Store. A retried Put whose earlier attempt stored the blob after all
// reports false (found stored), as the contract allows.
func (s *store) Put(ctx context.Context, id coffer.BlobID, r io.Reader, size int64, crc uint32) (bool, error) {
	seeker, ok := r.(io.Seeker)
	var start int64
	if ok {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			ok = false
		}
	}
	if !ok {
		return s.inner.Put(ctx, id, r, size, crc)
	}
	tries := 0
	return do(ctx, s, "put", func() (bool, error) {
		tries++
		if tries > 1 {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return false, fmt.Errorf("retry: put: rewind the reader: %w", err)
			}
		}
		return s.inner.Put(ctx, id, r, size, crc)
	})
}

// Get implements blobstore.Store.
func (s *store) Get(ctx context.Context, id coffer.BlobID, offset, length int64) (io.ReadCloser, error) {
	rc, err := do(ctx, s, "get", func() (io.ReadCloser, error) { return s.inner.Get(ctx, id, offset, length) })
	if err != nil {
		return nil, err
	}
	return &resumingReader{s: s, ctx: ctx, id: id, next: offset, left: length, rc: rc}, nil
}

// resumingReader reads a blob range and, on a retryable read error, reopens it at the first byte
// not yet delivered.
type resumingReader struct {
	s     *store
	ctx   context.Context
	id    coffer.BlobID
	next  int64 // offset of the next byte to deliver
	left  int64 // bytes still to deliver, or -1: to the end
	rc    io.ReadCloser
	fails int // consecutive failed tries without progress
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		if r.rc == nil {
			rc, err := r.s.inner.Get(r.ctx, r.id, r.next, r.left)
			if err != nil {
				if err := r.failed(err); err != nil {
					return 0, err
				}
				continue
			}
			r.rc = rc
		}
		n, err := r.rc.Read(p)
		if n > 0 {
			r.next += int64(n)
			if r.left > 0 {
				r.left -= int64(n)
			}
			r.fails = 0
		}
		if err == nil || err == io.EOF || !Retryable(err) {
			return n, err
		}
		r.rc.Close()
		r.rc = nil
		if n > 0 {
			return n, nil // deliver what we have; the next Read reopens
		}
		if err := r.failed(err); err != nil {
			return 0, err
		}
	}
}

// failed counts a failed try and waits before the next, or returns the error to give up with.
func (r *resumingReader) failed(err error) error {
	r.fails++
	if !Retryable(err) || r.fails >= r.s.cfg.Attempts || r.ctx.Err() != nil {
		return err
	}
	return r.s.wait(r.ctx, "get: read", r.fails-1, err)
}

func (r *resumingReader) Close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}

// Stat implements blobstore.Store.
func (s *store) Stat(ctx context.Context, id coffer.BlobID) (int64, error) {
	return do(ctx, s, "stat", func() (int64, error) { return s.inner.Stat(ctx, id) })
}

// Delete implements blobstore.Store.
func (s *store) Delete(ctx context.Context, id coffer.BlobID) error {
	_, err := do(ctx, s, "delete", func() (struct{}, error) { return struct{}{}, s.inner.Delete(ctx, id) })
	return err
}

// fnError marks an error returned by List's callback, so that it is never retried and is
// returned exactly as fn returned it.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

// List implements blobstore.Store.
func (s *store) List(ctx context.Context, fn func(id coffer.BlobID, size int64) error) error {
	var (
		last    coffer.BlobID
		started bool
	)
	_, err := do(ctx, s, "list", func() (struct{}, error) {
		err := s.inner.List(ctx, func(id coffer.BlobID, size int64) error {
			if started && string(id[:]) <= string(last[:]) {
				return nil // delivered before the retry
			}
			if err := fn(id, size); err != nil {
				return &fnError{err}
			}
			last, started = id, true
			return nil
		})
		var fe *fnError
		if errors.As(err, &fe) {
			// Never retried: Retryable sees only what fn returned, and a callback's
			// ErrUnavailable is not ours to retry.
			return struct{}{}, &fnDone{fe.err}
		}
		return struct{}{}, err
	})
	var done *fnDone
	if errors.As(err, &done) {
		return done.err
	}
	return err
}

// fnDone carries a callback's error out of do without matching Retryable.
type fnDone struct{ err error }

func (e *fnDone) Error() string { return e.err.Error() }
