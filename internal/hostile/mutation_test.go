package hostile

// The server mutation fuzzer: an honest session is recorded, then the read side (ls + get) is
// replayed many times with ONE random mutation of one server answer (or of the stored blobs).
// The client must return exactly the honest result or refuse; never other data, never a panic,
// never a partially written target file.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/internal/testenv"
)

// mutationIterations is COFFER_MUTATIONS (default 40).
func mutationIterations() int {
	if n, err := strconv.Atoi(os.Getenv("COFFER_MUTATIONS")); err == nil && n > 0 {
		return n
	}
	return 40
}

// response is a recorded server answer.
type response struct {
	key  string // method path range
	kind string // "listing", "blob", "other"
	body []byte
}

// mutator changes one answer; ok false means it did not apply (try another).
type mutator struct {
	name  string
	kinds string // which kinds it applies to
	apply func(m *mutationRun, r *http.Request, b []byte) ([]byte, bool)
}

type mutationRun struct {
	rng   *rand.Rand
	old   map[string][]byte   // listings recorded at an older head, by folder
	peers map[string][][]byte // other recorded bodies of the same kind
}

func frameEdit(edit func(rng *rand.Rand, fs []frame) ([]frame, bool)) func(m *mutationRun, r *http.Request, b []byte) ([]byte, bool) {
	return func(m *mutationRun, _ *http.Request, b []byte) ([]byte, bool) {
		fs, ok := splitFrames(b)
		if !ok || len(fs) < 2 {
			return nil, false
		}
		fs, ok = edit(m.rng, fs)
		return joinFrames(fs), ok
	}
}

var mutators = []mutator{
	{"flip bit", "listing blob other", func(m *mutationRun, _ *http.Request, b []byte) ([]byte, bool) {
		if len(b) == 0 {
			return nil, false
		}
		b = bytes.Clone(b)
		b[m.rng.IntN(len(b))] ^= 1 << m.rng.IntN(8)
		return b, true
	}},
	{"truncate", "listing blob other", func(m *mutationRun, _ *http.Request, b []byte) ([]byte, bool) {
		if len(b) == 0 {
			return nil, false
		}
		return b[:m.rng.IntN(len(b))], true
	}},
	{"append garbage", "listing blob", func(m *mutationRun, _ *http.Request, b []byte) ([]byte, bool) {
		return append(bytes.Clone(b), randBytes(1+m.rng.IntN(64))...), true
	}},
	{"insert bytes", "listing blob", func(m *mutationRun, _ *http.Request, b []byte) ([]byte, bool) {
		i := m.rng.IntN(len(b) + 1)
		return append(append(bytes.Clone(b[:i]), randBytes(1+m.rng.IntN(8))...), b[i:]...), true
	}},
	{"drop frame", "listing", frameEdit(func(rng *rand.Rand, fs []frame) ([]frame, bool) {
		i := rng.IntN(len(fs))
		return append(fs[:i:i], fs[i+1:]...), true
	})},
	{"duplicate frame", "listing", frameEdit(func(rng *rand.Rand, fs []frame) ([]frame, bool) {
		i := rng.IntN(len(fs))
		return append(fs[:i+1:i+1], fs[i:]...), true
	})},
	{"swap frames", "listing", frameEdit(func(rng *rand.Rand, fs []frame) ([]frame, bool) {
		i, j := rng.IntN(len(fs)), rng.IntN(len(fs))
		if fs[i].typ == fs[j].typ && bytes.Equal(fs[i].b, fs[j].b) {
			return fs, false
		}
		fs[i], fs[j] = fs[j], fs[i]
		return fs, true
	})},
	{"swap records", "listing", frameEdit(func(rng *rand.Rand, fs []frame) ([]frame, bool) {
		var rs []int
		for i, f := range fs {
			if f.typ == api.FrameRecord {
				rs = append(rs, i)
			}
		}
		if len(rs) < 2 {
			return fs, false
		}
		i, j := rs[rng.IntN(len(rs))], rs[rng.IntN(len(rs))]
		if i == j {
			return fs, false
		}
		fs[i], fs[j] = fs[j], fs[i]
		return fs, true
	})},
	{"drop record", "listing", frameEdit(func(rng *rand.Rand, fs []frame) ([]frame, bool) {
		for i, f := range fs {
			if f.typ == api.FrameRecord && rng.IntN(2) == 0 {
				return append(fs[:i:i], fs[i+1:]...), true
			}
		}
		return fs, false
	})},
	{"edit bucket", "listing", frameEdit(func(rng *rand.Rand, fs []frame) ([]frame, bool) {
		if len(fs) < 3 || len(fs[2].b) == 0 {
			return fs, false
		}
		fs[2].b[rng.IntN(len(fs[2].b))] ^= 0x80
		return fs, true
	})},
	{"frame length lies", "listing", func(m *mutationRun, _ *http.Request, b []byte) ([]byte, bool) {
		if len(b) < 5 {
			return nil, false
		}
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b[1:5], m.rng.Uint32())
		return b, true
	}},
	{"substitute other answer", "listing blob", func(m *mutationRun, r *http.Request, b []byte) ([]byte, bool) {
		ps := m.peers[kindOf(r)]
		if len(ps) == 0 {
			return nil, false
		}
		p := ps[m.rng.IntN(len(ps))]
		if bytes.Equal(p, b) {
			return nil, false
		}
		return bytes.Clone(p), true
	}},
	{"replay older head", "listing", func(m *mutationRun, r *http.Request, b []byte) ([]byte, bool) {
		o, ok := m.old[folderOf(r)]
		if !ok || bytes.Equal(o, b) {
			return nil, false
		}
		return o, true
	}},
	{"empty body", "listing blob", func(*mutationRun, *http.Request, []byte) ([]byte, bool) { return nil, true }},
}

func kindOf(r *http.Request) string {
	switch {
	case r.Method == "GET" && strings.Contains(r.URL.Path, "/folders/"):
		return "listing"
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/blobs/"):
		return "blob"
	}
	return "other"
}

// honest is the expected result of the read side.
type honest struct {
	lists map[string]string // path -> canonical listing
	files map[string][]byte // local relative path -> content
}

func canonical(es []*client.Entry) string {
	var lines []string
	for _, e := range es {
		lines = append(lines, fmt.Sprintf("%s %v %d %x %o %d", e.Path, e.IsDir, e.Size, e.Hash, e.Mode, e.MTime.UnixNano()))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

var readPaths = []string{"/", "/d", "/e"}

// readSide lists readPaths and downloads /d and /e into dst. It stops at the first error.
func readSide(ctx context.Context, c *client.Client, dst string) (map[string]string, error) {
	lists := map[string]string{}
	for _, p := range readPaths {
		es, err := c.List(ctx, p)
		if err != nil {
			if es != nil {
				return nil, fmt.Errorf("PARTIAL LISTING returned with error: %w", err)
			}
			return lists, err
		}
		lists[p] = canonical(es)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return lists, err
	}
	_, err := c.Download(ctx, []string{"/d", "/e"}, dst, client.TransferOptions{})
	return lists, err
}

// acceptable reports whether err is a refusal or a transport failure.
func acceptable(err error) bool {
	var ne net.Error
	var se *client.ServerError
	return isRefusal(err) || errors.Is(err, coffer.ErrUnavailable) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || (errors.As(err, &se) && se.Status >= 500)
}

// checkLocal walks dst: every file must be complete honest content; no partial files.
func checkLocal(t *testing.T, dst string, want map[string][]byte) {
	t.Helper()
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		got, _ := os.ReadFile(p)
		if w, ok := want[filepath.ToSlash(rel)]; !ok || !bytes.Equal(got, w) {
			t.Errorf("local file %s: %d bytes that are not the honest file (known: %v)", rel, len(got), ok)
		}
		return nil
	})
}

func TestMutationFuzzer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "victim")
	env := f.env
	ctx := context.Background()
	// The older state: record every listing, then commit once more.
	var mu sync.Mutex
	old := map[string][]byte{}
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if isListing(req, resp) {
			b, _ := testenv.ReadBody(resp)
			mu.Lock()
			old[folderOf(req)] = b
			mu.Unlock()
		}
		return nil
	})
	if _, err := readSide(ctx, f.login(t, f.state), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	env.SetHook(nil)
	if _, err := f.c.Mkdir(ctx, "/d/newer", false); err != nil {
		t.Fatal(err)
	}
	// The honest session at the current head, recording every answer.
	var recs []response
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if resp.StatusCode/100 == 2 {
			b, _ := testenv.ReadBody(resp)
			mu.Lock()
			recs = append(recs, response{req.Method + " " + req.URL.Path + " " + req.Header.Get("Range"), kindOf(req), b})
			mu.Unlock()
		}
		return nil
	})
	hdst := filepath.Join(t.TempDir(), "out")
	hlists, err := readSide(ctx, f.login(t, f.state), hdst)
	if err != nil {
		t.Fatal(err)
	}
	env.SetHook(nil)
	want := map[string][]byte{}
	for p, b := range f.contents {
		want[strings.TrimPrefix(p, "/")] = b
	}
	checkLocal(t, hdst, want)
	peers := map[string][][]byte{}
	counts := map[string]int{}
	for _, r := range recs {
		peers[r.kind] = append(peers[r.kind], r.body)
		counts[r.kind]++
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("COFFER_MUTATION_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (COFFER_MUTATION_SEED), %d answers recorded: %v", seed, len(recs), counts)
	run := &mutationRun{rng: rand.New(rand.NewPCG(seed, 1)), old: old, peers: peers}
	n := mutationIterations()
	applied, refused := 0, 0
	stats := map[string]int{}
	harmless := map[string]int{}
	for it := 0; it < n; it++ {
		mut := mutators[run.rng.IntN(len(mutators)+1)%len(mutators)]
		diskFlip := run.rng.IntN(len(mutators)+1) == 0 // now and then: a stored blob byte instead
		var restore func()
		target := run.rng.IntN(max(1, len(recs)))
		seen := 0
		did := ""
		if diskFlip {
			id := f.blobIDs(t)[run.rng.IntN(len(f.blobIDs(t)))]
			p := env.BlobPath(id)
			orig, _ := os.ReadFile(p)
			b := bytes.Clone(orig)
			b[run.rng.IntN(len(b))] ^= 1 << run.rng.IntN(8)
			os.WriteFile(p, b, 0o600)
			restore = func() { os.WriteFile(p, orig, 0o600) }
			did = "stored blob byte flipped"
		} else {
			env.SetHook(func(req *http.Request, resp *http.Response) error {
				if resp.StatusCode/100 != 2 || !strings.Contains(mut.kinds, kindOf(req)) || req.URL.Path == "/v1/login/start" {
					return nil // (a bad challenge fails the login server-side: rate limiting would end the run)
				}
				mu.Lock()
				defer mu.Unlock()
				seen++
				if did != "" || seen < target%8+1 {
					return nil
				}
				b, _ := testenv.ReadBody(resp)
				nb, ok := mut.apply(run, req, b)
				if !ok {
					return nil
				}
				did = mut.name + " on " + kindOf(req) + " " + req.URL.Path
				testenv.ReplaceBody(resp, nb)
				return nil
			})
		}
		dst := filepath.Join(t.TempDir(), "out")
		var lists map[string]string
		c, err := client.Login(ctx, env.Config(f.state), f.user, testenv.Password(f.user), "m")
		if err == nil {
			lists, err = readSide(ctx, c, dst)
		}
		env.SetHook(nil)
		if restore != nil {
			restore()
		}
		mu.Lock()
		what := did
		mu.Unlock()
		if what == "" {
			continue
		}
		applied++
		stats[strings.Fields(what)[0]+" "+strings.Fields(what)[1]]++
		for p, l := range lists {
			if l != hlists[p] {
				t.Errorf("iteration %d (%s): listing %s differs from the honest one:\n%s\nwant\n%s", it, what, p, l, hlists[p])
			}
		}
		if err == nil {
			harmless[strings.Fields(what)[0]+" "+strings.Fields(what)[1]+" "+kindOfWhat(what)]++
		}
		if err != nil {
			refused++
			loginPhase := strings.Contains(what, "/v1/login/") && (errors.Is(err, client.ErrLoginFailed) ||
				errors.Is(err, coffer.ErrInvalid) || errors.Is(err, client.ErrSession)) // a server can always refuse a login; weak KDF offers are ErrInvalid
			if !acceptable(err) && !loginPhase {
				t.Errorf("iteration %d (%s): unexpected error class: %v", it, what, err)
			}
		}
		checkLocal(t, dst, want)
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
	t.Logf("%d iterations, %d mutations applied, %d refused, %d harmless (exact honest result); %v", n, applied, refused, applied-refused, stats)
	t.Logf("harmless: %v", harmless)
	if applied < n/2 {
		t.Errorf("only %d of %d mutations applied", applied, n)
	}
}

// blobIDs lists the stored blob files of the fixture's server.
func (f *fixture) blobIDs(t testing.TB) []coffer.BlobID {
	var ids []coffer.BlobID
	filepath.WalkDir(filepath.Join(f.env.Dir, "blobstore", "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if id, err := coffer.ParseBlobID(d.Name()); err == nil {
				ids = append(ids, id)
			}
		}
		return nil
	})
	if len(ids) == 0 {
		t.Fatal("no blobs stored")
	}
	return ids
}

func kindOfWhat(what string) string {
	for _, k := range []string{"listing", "blob", "other"} {
		if strings.Contains(what, " "+k+" ") {
			return k
		}
	}
	return "store"
}
