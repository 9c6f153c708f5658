// Package blobstoretest is the conformance suite every blobstore.Store implementation runs.
//
// Usage, in an implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		blobstoretest.Run(t, func(t *testing.T) blobstore.Store { return newStore(t) })
//	}
//
// newStore must return a fresh, empty store for every call and arrange its cleanup with t.Cleanup.
// The suite relies only on the blobstore.Store contract.
package blobstoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"io"
	"maps"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coffer"
	"coffer/internal/blobstore"
)

// Run runs the whole suite. Subtests run sequentially (the memory check needs a quiet heap);
// the concurrency subtests start their own goroutines.
func Run(t *testing.T, newStore func(t *testing.T) blobstore.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s blobstore.Store)
	}{
		{"PutGetStatDelete", testPutGetStatDelete},
		{"EmptyBlob", testEmptyBlob},
		{"RePutIsIdempotent", testRePut},
		{"PutOfExistingIDKeepsFirstBytes", testNoOverwrite},
		{"ConcurrentPutsOfOneIDStoreOneWhole", testConcurrentSameIDDifferentBytes},
		{"WrongCRCStoresNothing", testWrongCRC},
		{"ShortReaderStoresNothing", testShortReader},
		{"LongReaderStoresNothing", testLongReader},
		{"NegativeSize", testNegativeSize},
		{"ReaderErrorStoresNothing", testReaderError},
		{"CancelMidPutStoresNothing", testCancelMidPut},
		{"FailedRePutKeepsBlob", testFailedRePutKeepsBlob},
		{"RangedGet", testRangedGet},
		{"NotFound", testNotFound},
		{"DeleteAbsent", testDeleteAbsent},
		{"ListOrderAndStop", testList},
		{"ConcurrentSameBlob", testConcurrentSame},
		{"ConcurrentDifferentBlobs", testConcurrentDifferent},
		{"LargeBlobBoundedMemory", testLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// data returns n deterministic pseudo-random bytes derived from seed.
func data(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// crc is the CRC-32C of b.
func crc(b []byte) uint32 { return crc32.Checksum(b, blobstore.CRC32C) }

// put stores b under its SHA-256 (any unique name will do: the caller names blobs, as the server's clients do) and checks
// that it was not stored before.
func put(t *testing.T, s blobstore.Store, b []byte) coffer.BlobID {
	t.Helper()
	id := coffer.BlobID(sha256.Sum256(b))
	created, err := s.Put(t.Context(), id, bytes.NewReader(b), int64(len(b)), crc(b))
	if err != nil {
		t.Fatalf("Put(%d bytes): %v", len(b), err)
	}
	if !created {
		t.Fatalf("Put of new blob %s reported it stored already", id)
	}
	return id
}

// putAs stores b under id, which need not be b's hash: the store does not hash.
func putAs(t *testing.T, s blobstore.Store, id coffer.BlobID, b []byte) (bool, error) {
	t.Helper()
	return s.Put(t.Context(), id, bytes.NewReader(b), int64(len(b)), crc(b))
}

func get(t *testing.T, s blobstore.Store, id coffer.BlobID, off, n int64) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), id, off, n)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): %v", id, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): read: %v", id, off, n, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Get(%s): close: %v", id, err)
	}
	return b
}

// list returns every stored blob with its size, checking ascending order.
func list(t *testing.T, s blobstore.Store) map[coffer.BlobID]int64 {
	t.Helper()
	out := map[coffer.BlobID]int64{}
	var prev *coffer.BlobID
	err := s.List(t.Context(), func(id coffer.BlobID, size int64) error {
		if prev != nil && bytes.Compare(prev[:], id[:]) >= 0 {
			t.Errorf("List: %s after %s: not ascending", id, *prev)
		}
		p := id
		prev = &p
		out[id] = size
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return out
}

// assertAbsent checks that id is not stored: Stat and Get say ErrNotFound.
func assertAbsent(t *testing.T, s blobstore.Store, id coffer.BlobID) {
	t.Helper()
	if _, err := s.Stat(t.Context(), id); !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("Stat(%s) = %v, want ErrNotFound", id, err)
	}
	rc, err := s.Get(t.Context(), id, 0, -1)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("Get(%s) = %v, want ErrNotFound", id, err)
	}
}

// assertEmpty checks that List yields nothing: failed puts left no blob under any ID.
func assertEmpty(t *testing.T, s blobstore.Store) {
	t.Helper()
	if got := list(t, s); len(got) != 0 {
		t.Errorf("List after failed puts has %d blobs, want none", len(got))
	}
}

func testPutGetStatDelete(t *testing.T, s blobstore.Store) {
	b := data(1, 100_000)
	id := put(t, s, b)
	if got := get(t, s, id, 0, -1); !bytes.Equal(got, b) {
		t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(b))
	}
	if n, err := s.Stat(t.Context(), id); err != nil || n != int64(len(b)) {
		t.Fatalf("Stat = %d, %v; want %d, nil", n, err, len(b))
	}
	if got := list(t, s); len(got) != 1 || got[id] != int64(len(b)) {
		t.Fatalf("List = %v, want just %s of %d bytes", got, id, len(b))
	}
	if err := s.Delete(t.Context(), id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertAbsent(t, s, id)
	assertEmpty(t, s)
}

func testEmptyBlob(t *testing.T, s blobstore.Store) {
	id := put(t, s, nil)
	if got := get(t, s, id, 0, -1); len(got) != 0 {
		t.Fatalf("Get of empty blob returned %d bytes", len(got))
	}
	if n, err := s.Stat(t.Context(), id); err != nil || n != 0 {
		t.Fatalf("Stat = %d, %v; want 0, nil", n, err)
	}
}

func testRePut(t *testing.T, s blobstore.Store) {
	b := data(2, 5000)
	id := put(t, s, b)
	for i := range 2 {
		if created, err := putAs(t, s, id, b); err != nil || created {
			t.Fatalf("Put #%d of a stored blob = %v, %v; want false, nil", i+2, created, err)
		}
	}
	if got := get(t, s, id, 0, -1); !bytes.Equal(got, b) {
		t.Fatal("content changed after re-put")
	}
	if got := list(t, s); len(got) != 1 {
		t.Fatalf("List after re-puts has %d blobs, want 1", len(got))
	}
}

// testNoOverwrite: the store trusts the caller's ID, so a Put of other bytes under a stored ID
// (a lying or broken uploader) must leave the stored blob exactly as it was, whatever the new
// bytes' length, and say it did not store them.
func testNoOverwrite(t *testing.T, s blobstore.Store) {
	first := data(3, 50_000)
	id := put(t, s, first)
	for _, other := range [][]byte{data(30, 50_000), data(31, 70_000), data(32, 10), first[:49_999]} {
		created, err := putAs(t, s, id, other)
		if err != nil || created {
			t.Fatalf("Put of %d other bytes under stored blob %s = %v, %v; want false, nil", len(other), id, created, err)
		}
		if got := get(t, s, id, 0, -1); !bytes.Equal(got, first) {
			t.Fatalf("Put of %d other bytes under a stored ID changed the blob (now %d bytes)", len(other), len(got))
		}
		if n, err := s.Stat(t.Context(), id); err != nil || n != int64(len(first)) {
			t.Fatalf("Stat after the other Put = %d, %v; want %d", n, err, len(first))
		}
	}
	if got := list(t, s); len(got) != 1 || got[id] != int64(len(first)) {
		t.Fatalf("List = %v, want just %s of %d bytes", got, id, len(first))
	}
}

// testConcurrentSameIDDifferentBytes: Puts of different bytes under one new ID race; at most one
// reports that it stored its bytes, and the blob is then entirely that Put's bytes, never a mix
// and never replaced by a later one.
func testConcurrentSameIDDifferentBytes(t *testing.T, s blobstore.Store) {
	const n = 6
	id := coffer.BlobID(sha256.Sum256([]byte("one contested id")))
	contents := make([][]byte, n)
	for i := range contents {
		contents[i] = data(uint64(300+i), 200_000+i*1000)
	}
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i, b := range contents {
		wg.Go(func() {
			c, err := putAs(t, s, id, b)
			if err != nil {
				t.Errorf("concurrent Put #%d: %v", i, err)
			}
			created[i] = c
		})
	}
	wg.Wait()
	winner := -1
	for i, c := range created {
		if c {
			if winner >= 0 {
				t.Fatalf("concurrent Puts #%d and #%d of one ID both report they stored their bytes", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent Put of a new ID reports it stored its bytes")
	}
	if got := get(t, s, id, 0, -1); !bytes.Equal(got, contents[winner]) {
		t.Fatalf("the blob (%d bytes) is not the bytes of the Put that stored it (#%d, %d bytes)", len(got), winner, len(contents[winner]))
	}
}

func testWrongCRC(t *testing.T, s blobstore.Store) {
	for _, b := range [][]byte{data(4, 4096), data(40, 1), data(41, 3<<20)} {
		id := coffer.BlobID(sha256.Sum256(b))
		for _, bad := range []uint32{crc(b) ^ 1, crc(b[:len(b)-1]), 0} {
			_, err := s.Put(t.Context(), id, bytes.NewReader(b), int64(len(b)), bad)
			if !errors.Is(err, coffer.ErrCorrupt) {
				t.Fatalf("Put of %d bytes with CRC %08x (theirs: %08x) = %v, want ErrCorrupt", len(b), bad, crc(b), err)
			}
			assertAbsent(t, s, id)
		}
	}
	// An empty blob's CRC is 0.
	if _, err := s.Put(t.Context(), coffer.BlobID{1}, bytes.NewReader(nil), 0, 1); !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("Put of 0 bytes with CRC 1 = %v, want ErrCorrupt", err)
	}
	assertEmpty(t, s)
}

func testShortReader(t *testing.T, s blobstore.Store) {
	b := data(5, 10_000)
	id := coffer.BlobID(sha256.Sum256(b))
	// The CRC of the bytes the reader does yield, so that only the length is wrong.
	_, err := s.Put(t.Context(), id, bytes.NewReader(b[:9_999]), int64(len(b)), crc(b[:9_999]))
	if !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("Put with short reader = %v, want ErrCorrupt", err)
	}
	assertAbsent(t, s, id)
	assertEmpty(t, s)
}

func testLongReader(t *testing.T, s blobstore.Store) {
	b := data(6, 10_000)
	id := coffer.BlobID(sha256.Sum256(b[:len(b)-1]))
	// The CRC of the declared bytes, so that only the extra byte is wrong.
	_, err := s.Put(t.Context(), id, bytes.NewReader(b), int64(len(b)-1), crc(b[:len(b)-1]))
	if !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("Put with long reader = %v, want ErrCorrupt", err)
	}
	assertAbsent(t, s, id)
	assertEmpty(t, s)
}

func testNegativeSize(t *testing.T, s blobstore.Store) {
	_, err := s.Put(t.Context(), coffer.BlobID{}, bytes.NewReader(nil), -1, 0)
	if err == nil {
		t.Fatal("Put with size -1 succeeded")
	}
	assertEmpty(t, s)
}

// failingReader yields n bytes of b and then fails with err.
type failingReader struct {
	b   []byte
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := copy(p, r.b[:min(len(r.b), r.n)])
	r.b, r.n = r.b[k:], r.n-k
	return k, nil
}

func testReaderError(t *testing.T, s blobstore.Store) {
	b := data(7, 3<<20)
	boom := errors.New("connection reset by test")
	_, err := s.Put(t.Context(), sha256.Sum256(b), &failingReader{b: b, n: 1 << 20, err: boom}, int64(len(b)), crc(b))
	if err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	if !errors.Is(err, boom) {
		t.Errorf("Put error %v does not wrap the reader's error", err)
	}
	assertAbsent(t, s, sha256.Sum256(b))
	assertEmpty(t, s)
}

// cancelReader cancels its context after the first read and then keeps yielding all of b, so a
// store that ignores ctx would store the blob.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
	reads  int
}

func (c *cancelReader) Read(p []byte) (int, error) {
	c.reads++
	if c.reads == 2 {
		c.cancel()
	}
	return c.r.Read(p[:min(len(p), 64<<10)])
}

func testCancelMidPut(t *testing.T, s blobstore.Store) {
	b := data(8, 2<<20)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := s.Put(ctx, sha256.Sum256(b), &cancelReader{r: bytes.NewReader(b), cancel: cancel}, int64(len(b)), crc(b))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put cancelled midway = %v, want context.Canceled", err)
	}
	assertAbsent(t, s, sha256.Sum256(b))
	assertEmpty(t, s)
}

func testFailedRePutKeepsBlob(t *testing.T, s blobstore.Store) {
	b := data(9, 50_000)
	id := put(t, s, b)
	if _, err := s.Put(t.Context(), id, bytes.NewReader(b[:100]), int64(len(b)), crc(b)); !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("short re-put = %v, want ErrCorrupt", err)
	}
	if _, err := s.Put(t.Context(), id, bytes.NewReader(b), int64(len(b)), crc(b)^1); !errors.Is(err, coffer.ErrCorrupt) {
		t.Fatalf("re-put with a wrong CRC = %v, want ErrCorrupt", err)
	}
	boom := errors.New("reader broke")
	if _, err := s.Put(t.Context(), id, &failingReader{b: b, n: 100, err: boom}, int64(len(b)), crc(b)); !errors.Is(err, boom) {
		t.Fatalf("re-put from a failing reader = %v, want its error", err)
	}
	if got := get(t, s, id, 0, -1); !bytes.Equal(got, b) {
		t.Fatal("a failed re-put changed the stored blob")
	}
}

func testRangedGet(t *testing.T, s blobstore.Store) {
	b := data(11, 10_000)
	id := put(t, s, b)
	ok := []struct{ off, n int64 }{
		{0, 10}, {0, 10_000}, {0, -1}, {1234, 100}, {5000, -1}, {9_999, 1}, {9_999, -1},
		{10_000, 0}, {10_000, -1}, {0, 0},
	}
	for _, r := range ok {
		want := b[r.off:]
		if r.n >= 0 {
			want = want[:r.n]
		}
		if got := get(t, s, id, r.off, r.n); !bytes.Equal(got, want) {
			t.Errorf("Get(%d, %d) returned %d wrong bytes, want %d", r.off, r.n, len(got), len(want))
		}
	}
	// Big ranges (a store may read them differently, e.g. the disk store past the page cache),
	// at offsets and lengths that are not multiples of any block size.
	big := data(12, 3<<20+777)
	bigID := put(t, s, big)
	for _, r := range []struct{ off, n int64 }{
		{0, -1}, {1, 1 << 20}, {4095, 64<<10 + 1}, {1<<20 - 3, 2<<20 + 7}, {int64(len(big)) - 70_000, -1}, {65_536, 65_536},
	} {
		want := big[r.off:]
		if r.n >= 0 {
			want = want[:r.n]
		}
		if got := get(t, s, bigID, r.off, r.n); !bytes.Equal(got, want) {
			t.Errorf("Get(%d, %d) of a %d-byte blob returned %d wrong bytes, want %d", r.off, r.n, len(big), len(got), len(want))
		}
	}
	bad := []struct{ off, n int64 }{{10_001, -1}, {10_001, 0}, {9_000, 1001}, {0, 10_001}, {-1, 5}, {-1, -1}}
	for _, r := range bad {
		rc, err := s.Get(t.Context(), id, r.off, r.n)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, coffer.ErrInvalid) {
			t.Errorf("Get(%d, %d) of a 10000-byte blob = %v, want ErrInvalid", r.off, r.n, err)
		}
	}
}

func testNotFound(t *testing.T, s blobstore.Store) {
	assertAbsent(t, s, sha256.Sum256([]byte("never stored")))
	// A ranged Get of an absent blob is NotFound, not Invalid.
	rc, err := s.Get(t.Context(), sha256.Sum256([]byte("x")), 5, 5)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("ranged Get of absent blob = %v, want ErrNotFound", err)
	}
}

func testDeleteAbsent(t *testing.T, s blobstore.Store) {
	if err := s.Delete(t.Context(), sha256.Sum256([]byte("absent"))); err != nil {
		t.Fatalf("Delete of absent blob = %v, want nil", err)
	}
	id := put(t, s, []byte("once"))
	for i := range 2 {
		if err := s.Delete(t.Context(), id); err != nil {
			t.Fatalf("Delete #%d = %v", i+1, err)
		}
	}
}

func testList(t *testing.T, s blobstore.Store) {
	want := map[coffer.BlobID]int64{}
	for i := range 40 {
		b := data(uint64(100+i), 10+i)
		want[put(t, s, b)] = int64(len(b))
	}
	got := list(t, s) // checks ascending order
	if len(got) != len(want) {
		t.Fatalf("List has %d blobs, want %d", len(got), len(want))
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("List: %s has size %d, want %d", id, got[id], n)
		}
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(t.Context(), func(coffer.BlobID, int64) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("List with fn failing on call 3 = %v after %d calls; want the fn error after 3", err, calls)
	}
}

func testConcurrentSame(t *testing.T, s blobstore.Store) {
	b := data(12, 300_000)
	want := coffer.BlobID(sha256.Sum256(b))
	const n = 8
	var (
		wg     sync.WaitGroup
		stored atomic.Int32
	)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			created, err := s.Put(t.Context(), want, bytes.NewReader(b), int64(len(b)), crc(b))
			if created {
				stored.Add(1)
			}
			errs[i] = err
		})
	}
	// Readers racing the writers see the whole blob or nothing.
	for range 4 {
		wg.Go(func() {
			for range 20 {
				rc, err := s.Get(t.Context(), want, 0, -1)
				if errors.Is(err, coffer.ErrNotFound) {
					continue
				}
				if err != nil {
					t.Errorf("concurrent Get: %v", err)
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, b) {
					t.Errorf("concurrent Get saw a partial or wrong blob (%d bytes, %v)", len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Put #%d: %v", i, err)
		}
	}
	if got := stored.Load(); got != 1 {
		t.Errorf("%d of %d concurrent Puts of one new blob report they stored it, want 1", got, n)
	}
	if got := get(t, s, want, 0, -1); !bytes.Equal(got, b) {
		t.Fatal("blob wrong after concurrent puts")
	}
	if got := list(t, s); len(got) != 1 {
		t.Fatalf("List after concurrent puts of one blob has %d entries", len(got))
	}
}

func testConcurrentDifferent(t *testing.T, s blobstore.Store) {
	const n = 16
	blobs := make([][]byte, n)
	for i := range blobs {
		blobs[i] = data(uint64(200+i), 20_000+i)
	}
	var wg sync.WaitGroup
	for _, b := range blobs {
		wg.Go(func() {
			if _, err := s.Put(t.Context(), sha256.Sum256(b), bytes.NewReader(b), int64(len(b)), crc(b)); err != nil {
				t.Errorf("concurrent Put: %v", err)
			}
		})
	}
	wg.Wait()
	got := list(t, s)
	if len(got) != n {
		t.Fatalf("List has %d blobs, want %d", len(got), n)
	}
	for _, b := range blobs {
		if g := get(t, s, sha256.Sum256(b), 0, -1); !bytes.Equal(g, b) {
			t.Errorf("blob of %d bytes read back wrong", len(b))
		}
	}
	// Concurrent deletes of every blob, twice each.
	ids := slices.Collect(maps.Keys(got))
	for range 2 {
		for _, id := range ids {
			wg.Go(func() {
				if err := s.Delete(t.Context(), id); err != nil {
					t.Errorf("concurrent Delete: %v", err)
				}
			})
		}
	}
	wg.Wait()
	assertEmpty(t, s)
}

// genReader yields n deterministic pseudo-random bytes without holding them.
type genReader struct {
	r    *rand.ChaCha8
	left int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.r.Read(p)
	g.left -= int64(n)
	return n, nil
}

// largeSize is the size of the bounded-memory blob; maxHeapGrowth is how far the live heap may
// grow above its starting point while Put or a full Get of it runs. A store that buffers the blob
// holds at least 20 MiB; one that streams with buffers (or upload parts) of a few MiB stays below.
const (
	largeSize     = 20 << 20
	maxHeapGrowth = 12 << 20
)

func testLarge(t *testing.T, s blobstore.Store) {
	seed := [32]byte{1, 2, 3}
	h, c := sha256.New(), crc32.New(blobstore.CRC32C)
	if _, err := io.Copy(io.MultiWriter(h, c), &genReader{r: rand.NewChaCha8(seed), left: largeSize}); err != nil {
		t.Fatal(err)
	}
	id := coffer.BlobID(h.Sum(nil))
	growth := peakHeapGrowth(func() {
		created, err := s.Put(t.Context(), id, &genReader{r: rand.NewChaCha8(seed), left: largeSize}, largeSize, c.Sum32())
		if err != nil || !created {
			t.Errorf("Put of 20 MiB = %v, %v; want true, nil", created, err)
		}
	})
	if t.Failed() {
		return
	}
	if growth > maxHeapGrowth {
		t.Errorf("Put of a 20 MiB blob grew the heap by %d bytes; want at most %d (stream, do not buffer)", growth, maxHeapGrowth)
	}
	if n, err := s.Stat(t.Context(), id); err != nil || n != largeSize {
		t.Fatalf("Stat = %d, %v; want %d", n, err, largeSize)
	}
	growth = peakHeapGrowth(func() {
		rc, err := s.Get(t.Context(), id, 0, -1)
		if err != nil {
			t.Errorf("Get: %v", err)
			return
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, rc, make([]byte, 64<<10))
		if err != nil || n != largeSize {
			t.Errorf("reading the 20 MiB blob: %d bytes, %v", n, err)
		} else if got := coffer.BlobID(h.Sum(nil)); got != id {
			t.Errorf("20 MiB blob read back with hash %s, want %s", got, id)
		}
	})
	if t.Failed() {
		return
	}
	if growth > maxHeapGrowth {
		t.Errorf("Get of a 20 MiB blob grew the heap by %d bytes; want at most %d (stream, do not buffer)", growth, maxHeapGrowth)
	}
	// A ranged read from the middle.
	rc, err := s.Get(t.Context(), id, largeSize/2, 1<<20)
	if err != nil {
		t.Fatalf("ranged Get: %v", err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n != 1<<20 {
		t.Fatalf("ranged Get of the large blob read %d bytes, %v; want 1 MiB", n, err)
	}
}

// peakHeapGrowth runs fn with an eager garbage collector and returns how far the live heap grew
// above its level before fn, sampled every 100 µs.
func peakHeapGrowth(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := heap()
	var (
		peak atomic.Uint64
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			if h := heap(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	if h := heap(); h > peak.Load() {
		peak.Store(h)
	}
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// PutBytes stores b in s under its SHA-256 with its CRC-32C, as the server does for a client that
// names its blobs honestly, and returns the ID.
func PutBytes(ctx context.Context, s blobstore.Store, b []byte) (coffer.BlobID, error) {
	id := coffer.BlobID(sha256.Sum256(b))
	_, err := s.Put(ctx, id, bytes.NewReader(b), int64(len(b)), crc32.Checksum(b, blobstore.CRC32C))
	return id, err
}
