package retry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/internal/blobstore"
	"coffer/internal/blobstore/blobstoretest"
	"coffer/internal/blobstore/disk"
	"coffer/internal/blobstore/retry"
)

// errInjected is the temporary failure the faulty store injects.
var errInjected = fmt.Errorf("injected fault: %w", coffer.ErrUnavailable)

// faulty wraps a real store and fails the first fail[op] calls of each operation with
// errInjected. A failing Put first consumes half its reader (so a retry must rewind it); with
// after set, the operation is carried out before the error is reported (the answer was lost).
// Get's readers fail once, midway, for the first readFails opens. A failing List first delivers
// half of the blobs.
type faulty struct {
	inner blobstore.Store
	after bool

	mu        sync.Mutex
	fail      map[string]int
	calls     map[string]int
	readFails int
}

func newFaulty(t *testing.T, fail map[string]int) *faulty {
	t.Helper()
	d, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if fail == nil {
		fail = map[string]int{}
	}
	return &faulty{inner: d, fail: fail, calls: map[string]int{}}
}

// hit counts a call of op and reports whether it must fail.
func (f *faulty) hit(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.fail[op] > 0 {
		f.fail[op]--
		return true
	}
	return false
}

func (f *faulty) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *faulty) Put(ctx context.Context, id coffer.BlobID, r io.Reader, size int64, crc uint32) (bool, error) {
	if !f.hit("put") {
		return f.inner.Put(ctx, id, r, size, crc)
	}
	if f.after {
		if _, err := f.inner.Put(ctx, id, r, size, crc); err != nil {
			return false, err
		}
		return false, errInjected
	}
	io.CopyN(io.Discard, r, size/2)
	return false, errInjected
}

func (f *faulty) Get(ctx context.Context, id coffer.BlobID, off, n int64) (io.ReadCloser, error) {
	if f.hit("get") {
		return nil, errInjected
	}
	rc, err := f.inner.Get(ctx, id, off, n)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readFails > 0 {
		f.readFails--
		return &midFail{ReadCloser: rc, left: 777}, nil
	}
	return rc, nil
}

// midFail yields left bytes and then fails with errInjected.
type midFail struct {
	io.ReadCloser
	left int
}

func (m *midFail) Read(p []byte) (int, error) {
	if m.left == 0 {
		return 0, errInjected
	}
	n, err := m.ReadCloser.Read(p[:min(len(p), m.left)])
	m.left -= n
	return n, err
}

func (f *faulty) Stat(ctx context.Context, id coffer.BlobID) (int64, error) {
	if f.hit("stat") {
		return 0, errInjected
	}
	return f.inner.Stat(ctx, id)
}

func (f *faulty) Delete(ctx context.Context, id coffer.BlobID) error {
	if f.hit("delete") {
		if f.after {
			if err := f.inner.Delete(ctx, id); err != nil {
				return err
			}
		}
		return errInjected
	}
	return f.inner.Delete(ctx, id)
}

func (f *faulty) List(ctx context.Context, fn func(coffer.BlobID, int64) error) error {
	if !f.hit("list") {
		return f.inner.List(ctx, fn)
	}
	var all []coffer.BlobID
	sizes := map[coffer.BlobID]int64{}
	if err := f.inner.List(ctx, func(id coffer.BlobID, n int64) error { all = append(all, id); sizes[id] = n; return nil }); err != nil {
		return err
	}
	for _, id := range all[:len(all)/2] {
		if err := fn(id, sizes[id]); err != nil {
			return err
		}
	}
	return errInjected
}

func fast(attempts int) retry.Config {
	return retry.Config{Attempts: attempts, BaseDelay: time.Microsecond, MaxDelay: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
}

func TestConformance(t *testing.T) {
	blobstoretest.Run(t, func(t *testing.T) blobstore.Store {
		return retry.New(newFaulty(t, nil), fast(0))
	})
}

// TestConformanceWithFaults runs the suite with every operation but Put failing twice (Get also
// mid-stream) and then working: the retries must hide the faults. Put faults are tested below;
// the suite passes readers that cannot be rewound.
func TestConformanceWithFaults(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("after=%v", after), func(t *testing.T) {
			blobstoretest.Run(t, func(t *testing.T) blobstore.Store {
				f := newFaulty(t, map[string]int{"get": 2, "stat": 2, "delete": 2, "list": 2})
				f.after = after
				f.readFails = 2
				return retry.New(f, fast(3))
			})
		})
	}
}

func TestPutRewindsSeekableReader(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("after=%v", after), func(t *testing.T) {
			f := newFaulty(t, map[string]int{"put": 2})
			f.after = after
			s := retry.New(f, fast(3))
			b := bytes.Repeat([]byte("0123456789"), 10_000)
			r := bytes.NewReader(append([]byte("skip"), b...))
			r.Seek(4, io.SeekStart) // Put must rewind to here, not to 0
			id := coffer.BlobID(sha256.Sum256(b))
			created, err := s.Put(t.Context(), id, r, int64(len(b)), crc32.Checksum(b, blobstore.CRC32C))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			// With after, the first failed attempt stored the blob: the retry finds it.
			if created == after {
				t.Errorf("Put reported created=%v, want %v", created, !after)
			}
			if got, err := s.Get(t.Context(), id, 0, -1); err != nil {
				t.Fatal(err)
			} else if all, _ := io.ReadAll(got); !bytes.Equal(all, b) {
				t.Fatal("the stored blob differs from the bytes after the rewind")
			}
			if got := f.count("put"); got != 3 {
				t.Errorf("inner Put called %d times, want 3", got)
			}
		})
	}
}

func TestPutNotRetriedWithoutSeek(t *testing.T) {
	f := newFaulty(t, map[string]int{"put": 1})
	s := retry.New(f, fast(5))
	b := []byte("cannot rewind me")
	_, err := s.Put(t.Context(), sha256.Sum256(b), io.MultiReader(bytes.NewReader(b)), int64(len(b)), crc32.Checksum(b, blobstore.CRC32C))
	if !errors.Is(err, errInjected) {
		t.Fatalf("Put = %v, want the injected error", err)
	}
	if got := f.count("put"); got != 1 {
		t.Errorf("inner Put called %d times, want 1", got)
	}
}

func TestPermanentErrorsNotRetried(t *testing.T) {
	f := newFaulty(t, nil)
	s := retry.New(f, fast(5))
	absent := coffer.BlobID(sha256.Sum256([]byte("absent")))
	if _, err := s.Stat(t.Context(), absent); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("Stat = %v", err)
	}
	if _, err := s.Get(t.Context(), absent, 0, -1); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("Get = %v", err)
	}
	b := []byte("content")
	if _, err := s.Put(t.Context(), absent, bytes.NewReader(b), int64(len(b)), 1); !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("Put with a wrong CRC = %v", err)
	}
	id, err := blobstoretest.PutBytes(t.Context(), s, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), id, 100, 1); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("Get past the end = %v", err)
	}
	for op, want := range map[string]int{"stat": 1, "get": 2, "put": 2} {
		if got := f.count(op); got != want {
			t.Errorf("inner %s called %d times, want %d (no retries)", op, got, want)
		}
	}
}

func TestGivesUp(t *testing.T) {
	f := newFaulty(t, map[string]int{"stat": 100})
	s := retry.New(f, fast(3))
	if _, err := s.Stat(t.Context(), coffer.BlobID{}); !errors.Is(err, errInjected) {
		t.Fatalf("Stat = %v, want the injected error", err)
	}
	if got := f.count("stat"); got != 3 {
		t.Errorf("inner Stat called %d times, want 3", got)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	f := newFaulty(t, map[string]int{"stat": 100})
	s := retry.New(f, retry.Config{Attempts: 10, BaseDelay: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Stat(ctx, coffer.BlobID{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stat = %v, want DeadlineExceeded", err)
	}
	if retry.Retryable(err) {
		t.Errorf("a context error is retryable: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stat took %v to notice the deadline", d)
	}
}

func TestGetResumesMidStream(t *testing.T) {
	f := newFaulty(t, nil)
	s := retry.New(f, fast(3))
	b := make([]byte, 10_000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	id, err := blobstoretest.PutBytes(t.Context(), s, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ off, n int64 }{{0, -1}, {100, 5000}, {3000, -1}} {
		f.mu.Lock()
		f.readFails = 2 // each of two opens fails after 777 bytes
		f.mu.Unlock()
		rc, err := s.Get(t.Context(), id, r.off, r.n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		want := b[r.off:]
		if r.n >= 0 {
			want = want[:r.n]
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Get(%d, %d) read %d bytes (%v), want %d correct bytes", r.off, r.n, len(got), err, len(want))
		}
	}
	// Without progress, a reader gives up after Attempts tries: the read that failed and two
	// reopens that fail.
	f.mu.Lock()
	f.readFails = 1
	f.mu.Unlock()
	rc, err := s.Get(t.Context(), id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	before := f.count("get")
	f.mu.Lock()
	f.fail["get"] = 100
	f.mu.Unlock()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, errInjected) || len(got) != 777 {
		t.Fatalf("read with failing reopens = %d bytes, %v; want 777 and the injected error", len(got), err)
	}
	if n := f.count("get") - before; n != 2 {
		t.Errorf("%d reopens, want 2", n)
	}
}

// TestListResumesWithoutDuplicates: a List that fails halfway is retried, and fn sees every blob
// once, in order.
func TestListResumesWithoutDuplicates(t *testing.T) {
	f := newFaulty(t, nil)
	s := retry.New(f, fast(4))
	var want []coffer.BlobID
	for i := range 20 {
		b := []byte(fmt.Sprint("blob ", i))
		id, err := blobstoretest.PutBytes(t.Context(), s, b)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	f.mu.Lock()
	f.fail["list"] = 2
	f.mu.Unlock()
	var got []coffer.BlobID
	if err := s.List(t.Context(), func(id coffer.BlobID, _ int64) error { got = append(got, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("List delivered %d blobs, want %d", len(got), len(want))
	}
	for i := 1; i < len(got); i++ {
		if string(got[i-1][:]) >= string(got[i][:]) {
			t.Fatalf("List not strictly ascending at %d", i)
		}
	}
	if c := f.count("list"); c != 3 {
		t.Errorf("inner List called %d times, want 3", c)
	}
}

// TestListCallbackErrorNotRetried: fn's error, even a temporary-looking one, ends List at once
// and is returned as is.
func TestListCallbackErrorNotRetried(t *testing.T) {
	f := newFaulty(t, nil)
	s := retry.New(f, fast(4))
	b := []byte("x")
	if _, err := blobstoretest.PutBytes(t.Context(), s, b); err != nil {
		t.Fatal(err)
	}
	mine := fmt.Errorf("callback: %w", coffer.ErrUnavailable)
	err := s.List(t.Context(), func(coffer.BlobID, int64) error { return mine })
	if err != mine {
		t.Fatalf("List = %v, want the callback's error itself", err)
	}
	if c := f.count("list"); c != 1 {
		t.Errorf("inner List called %d times, want 1", c)
	}
}

func TestLogsRetries(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	h := slog.NewTextHandler(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) }), nil)
	f := newFaulty(t, map[string]int{"stat": 1})
	s := retry.New(f, retry.Config{BaseDelay: time.Microsecond, Logger: slog.New(h)})
	if _, err := s.Stat(t.Context(), coffer.BlobID{}); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("Stat = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "op=stat") || !strings.Contains(buf.String(), "retry=1") {
		t.Errorf("log = %q, want one retry warning for stat", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{coffer.ErrUnavailable, true},
		{fmt.Errorf("s3: get: %w", errInjected), true},
		{fmt.Errorf("%w: %w", coffer.ErrUnavailable, coffer.ErrNotFound), false},
		{fmt.Errorf("%w: %w", coffer.ErrUnavailable, context.Canceled), false},
		{coffer.ErrCorrupt, false},
		{coffer.ErrInvalid, false},
	} {
		if got := retry.Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
