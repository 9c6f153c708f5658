package client

// Fuzz targets for the client's decoders of untrusted input: folder listings, server error
// bodies and JSON answers, remote path cleaning, local name safety, and the state directory's
// files (journal, session, account state). Each runs its seed corpus in plain `go test`.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"coffer"
	"coffer/api"
	"coffer/format"
)

func listingSeed(recs ...[]byte) []byte {
	var b []byte
	add := func(t byte, p []byte) {
		b = append(b, t)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	add(api.FrameHead, make([]byte, format.HeadLen))
	add(api.FrameBuckets, make([]byte, 256*32))
	add(api.FrameBucket, make([]byte, summaryLen))
	for _, r := range recs {
		add(api.FrameRecord, r)
	}
	add(api.FrameEnd, nil)
	return b
}

func FuzzParseListing(f *testing.F) {
	f.Add(listingSeed())
	f.Add(listingSeed([]byte("record one"), []byte("record two")))
	f.Add(listingSeed()[:100])
	f.Add([]byte{api.FrameHead, 0xff, 0xff, 0xff, 0xff})
	f.Add(append(listingSeed(), 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &rawListing{}
		var recRaw [][]byte
		err := parseListing(bufio.NewReader(bytes.NewReader(data)), l, func(b []byte) { recRaw = append(recRaw, bytes.Clone(b)) })
		if err != nil {
			if !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// A parsed listing is exactly the input, frame for frame (no ignored bytes).
		var b []byte
		add := func(t byte, p []byte) {
			b = append(b, t)
			b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
			b = append(b, p...)
		}
		add(api.FrameHead, l.headRaw)
		var all []byte
		for i := range l.buckets {
			all = append(all, l.buckets[i][:]...)
		}
		add(api.FrameBuckets, all)
		var bk []byte
		for _, s := range l.bucket {
			bk = append(bk, s.Folder[:]...)
			bk = binary.BigEndian.AppendUint64(bk, s.Count)
			bk = append(bk, s.Root[:]...)
		}
		add(api.FrameBucket, bk)
		for _, r := range recRaw {
			add(api.FrameRecord, r)
		}
		add(api.FrameEnd, nil)
		if !bytes.Equal(b, data) {
			t.Fatalf("accepted listing does not re-encode to its input")
		}
	})
}

func FuzzCleanRemote(f *testing.F) {
	for _, s := range []string{"", "/", "a", "/a/b", "../..", "/a/../../b", "a//b/./c/", "\x00", "/é/ü", `a\b`, "/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := cleanRemote(p)
		if err != nil {
			if !strings.ContainsRune(p, 0) {
				t.Fatalf("cleanRemote(%q): %v", p, err)
			}
			return
		}
		if !strings.HasPrefix(c, "/") || path.Clean(c) != c {
			t.Fatalf("cleanRemote(%q) = %q: not clean and absolute", p, c)
		}
		if c2, err := cleanRemote(c); err != nil || c2 != c {
			t.Fatalf("cleanRemote not idempotent: %q -> %q -> %q", p, c, c2)
		}
		els, err := splitRemote(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range els {
			if e == "" || e == "." || e == ".." || strings.Contains(e, "/") {
				t.Fatalf("splitRemote(%q) has element %q", p, e)
			}
		}
		if (c == "/") != (len(els) == 0) {
			t.Fatalf("splitRemote(%q) = %q for %q", p, els, c)
		}
	})
}

func FuzzSafeLocalName(f *testing.F) {
	for _, s := range []string{"a", ".", "..", "a/b", `a\b`, "CON", "con.txt", "nul .x", "a.", "a ", "\x01", "\xff", "COM¹", "ok name.txt", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := safeLocalName(name)
		if err != nil {
			if !strings.Contains(err.Error(), "unsafe file name") {
				t.Fatalf("error does not wrap ErrUnsafeName: %v", err)
			}
			return
		}
		if !utf8.ValidString(name) || name == "" || len(name) > 255 || strings.ContainsAny(name, "/\\\x00") {
			t.Fatalf("unsafe name %q accepted", name)
		}
		if !filepath.IsLocal(name) || filepath.Base(name) != name {
			t.Fatalf("name %q accepted but is not one local element", name)
		}
		dir := filepath.FromSlash("/base/dir")
		j, err := safeLocalJoin(dir, []string{name, name})
		if err != nil {
			t.Fatalf("safeLocalJoin(%q): %v", name, err)
		}
		if !strings.HasPrefix(j, dir+string(filepath.Separator)) {
			t.Fatalf("safeLocalJoin(%q) = %q escapes %q", name, j, dir)
		}
	})
}

func FuzzServerErrorAndJSON(f *testing.F) {
	f.Add(409, []byte(`{"code":"conflict","message":"m","current":{"tree":"00000000000000000000000000000000","version":3,"head":"AAAA"}}`))
	f.Add(429, []byte(`{"code":"rate_limited","retry_after":5}`))
	f.Add(500, []byte("<html>oops</html>"))
	f.Add(200, []byte(`{"token":"t","session":"s","account":{"account":"0123456789abcdef0123456789abcdef","bundle":"AA=="},"master_key":"AA=="}`))
	f.Add(200, []byte(`{"changes":[{"seq":1,"tree":"0123456789abcdef0123456789abcdef","ops":[{"node":"0123456789abcdef0123456789abcdef","hash":"AA=="}]}],"latest":1}`))
	f.Add(200, []byte(`{"present":["`+strings.Repeat("ab", 32)+`"]}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 500
		}
		resp := &http.Response{StatusCode: status, Body: io.NopCloser(bytes.NewReader(body))}
		e := readServerError(resp)
		if e.Error() == "" || e.Status != status {
			t.Fatalf("server error %+v", e)
		}
		_ = e.Unwrap()
		for _, out := range []any{new(api.LoginResponse), new(api.AccountInfo), new(api.PreloginResponse),
			new(api.ChangesResponse), new(api.BlobsResponse), new(api.BlobPutResponse), new(api.VersionsResponse),
			new(api.CommitResponse), new([]api.SessionInfo), new(api.UsageResponse), new(api.UserKeysResponse)} {
			r := &http.Response{Body: io.NopCloser(bytes.NewReader(body))}
			if err := decodeJSONBody(r, out); err != nil && !strings.Contains(err.Error(), coffer.ErrCorrupt.Error()) {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
		}
	})
}

func FuzzStateFiles(f *testing.F) {
	f.Add([]byte(`{"local":"/a","remote":"/b","size":3,"mtime":1,"key":"00","chunk_size":1048576}`+"\nt 0 "+strings.Repeat("00", 16)+"\np 0 1 "+strings.Repeat("ab", 32)+"\n"), 0)
	f.Add([]byte(`{"server":"http://x","username":"u","token":"t","session":"s","master_key":"`+strings.Repeat("00", 32)+`"}`), 1)
	f.Add([]byte(`{"heads":{"0123456789abcdef0123456789abcdef":{"version":1,"hash":"","head":"AAAA"}},"bundle_generation":2}`), 2)
	f.Add([]byte("{\"local\":1}\nh x y\n"), 0)
	f.Fuzz(func(t *testing.T, data []byte, which int) {
		dir := t.TempDir()
		switch ((which % 3) + 3) % 3 {
		case 0:
			p := filepath.Join(dir, "j.journal")
			os.WriteFile(p, data, 0o600)
			j, err := loadJournal(p)
			if err == nil && j != nil {
				for _, pk := range j.packs {
					if pk.count == 0 {
						t.Fatal("journal pack with zero chunks accepted")
					}
				}
			}
		case 1:
			os.WriteFile(filepath.Join(dir, sessionFile), data, 0o600)
			if s, err := loadSession(dir); err == nil && (s.Token == "" || len(s.MasterKey) != 64) {
				t.Fatal("incomplete session accepted")
			}
		case 2:
			var acct coffer.AccountID
			sd := filepath.Join(dir, accountsDir, acct.String())
			os.MkdirAll(sd, 0o700)
			os.WriteFile(filepath.Join(sd, stateFile), data, 0o600)
			st, err := openState(dir, acct)
			if err == nil {
				for tr := range st.st.Heads {
					st.head(tr) // must not panic
				}
				st.bundleGeneration()
			}
		}
	})
}

var _ = json.Marshal
