package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"coffer"
	"coffer/format"
)

// An upload journal lets a re-run of an interrupted upload of a big file reuse the packs the
// server already acknowledged. It lives in StateDir/journal/, one file per (account, local path,
// remote path), and is an append-only log:
//
//	{"local":...,"remote":...,"size":N,"mtime":N,"key":"hex","chunk_size":N}   header line
//	t <chunk index> <hex AES-GCM tag of the sealed chunk>                       before sending
//	p <first chunk> <count> <blob id>                                           pack acknowledged
//
// Tag lines are written and fsynced after a chunk is sealed and BEFORE its ciphertext leaves the
// process, so a re-run knows every (content key, chunk index) pair whose ciphertext the server may
// have seen, and the tag of the plaintext it encrypted. The re-run reuses the key only if every
// journaled chunk, sealed again from the file as it is now, gives the same tag, and starts over
// with a fresh key otherwise: a nonce is never used for two different plaintexts the server could
// see. (Under one key and nonce, two different 1 MiB plaintexts give the same GCM tag with
// probability at most 2^-111 for contents not chosen with knowledge of the key.) Journaling the
// tag, which sealing computes anyway, costs no hash pass over the plaintext. A torn last line
// (crash while appending) is ignored; a journal of an older layout ("h" lines) is not trusted.
type journalHeader struct {
	Local     string `json:"local"`
	Remote    string `json:"remote"`
	Size      int64  `json:"size"`
	MTime     int64  `json:"mtime"`
	Key       string `json:"key"`
	ChunkSize uint32 `json:"chunk_size"`
}

type journalPack struct {
	first, count uint64
	blob         coffer.BlobID
}

// upJournal is the open journal of one file.
type upJournal struct {
	path string
	hdr  journalHeader

	mu    sync.Mutex
	f     *os.File
	tags  map[uint64][16]byte
	packs []journalPack
	// Group commit of tag lines: written counts lines appended, synced the lines covered by the
	// last fsync; syncMu serialises fsyncs so one covers every line appended before it.
	written, synced uint64
	syncMu          sync.Mutex
}

// journalPath names the journal of local → remote for acct.
func journalPath(stateDir string, acct coffer.AccountID, local, remote string) string {
	sum := sha256.Sum256([]byte(acct.String() + "\x00" + local + "\x00" + remote))
	return filepath.Join(stateDir, journalDir, hex.EncodeToString(sum[:16])+".journal")
}

// loadJournal reads a journal; a missing file is (nil, nil).
func loadJournal(p string) (*upJournal, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: journal: %w", err)
	}
	j := &upJournal{path: p, tags: map[uint64][16]byte{}}
	lines := bytes.Split(b, []byte("\n"))
	// Only newline-terminated lines count: the last element is "" or a torn line.
	lines = lines[:len(lines)-1]
	if len(lines) == 0 {
		return nil, fmt.Errorf("client: journal %s: no header: %w", p, coffer.ErrCorrupt)
	}
	if err := json.Unmarshal(lines[0], &j.hdr); err != nil {
		return nil, fmt.Errorf("client: journal %s: header: %v: %w", p, err, coffer.ErrCorrupt)
	}
	for _, ln := range lines[1:] {
		f := strings.Fields(string(ln))
		bad := fmt.Errorf("client: journal %s: line %q: %w", p, ln, coffer.ErrCorrupt)
		switch {
		case len(f) == 3 && f[0] == "t":
			i, err1 := strconv.ParseUint(f[1], 10, 64)
			h, err2 := hex.DecodeString(f[2])
			if err1 != nil || err2 != nil || len(h) != 16 {
				return nil, bad
			}
			j.tags[i] = [16]byte(h)
		case len(f) == 4 && f[0] == "p":
			first, err1 := strconv.ParseUint(f[1], 10, 64)
			count, err2 := strconv.ParseUint(f[2], 10, 64)
			blob, err3 := coffer.ParseBlobID(f[3])
			if err1 != nil || err2 != nil || err3 != nil || count == 0 {
				return nil, bad
			}
			j.packs = append(j.packs, journalPack{first, count, blob})
		default:
			return nil, bad
		}
	}
	return j, nil
}

// createJournal starts a fresh journal (replacing any old one) with a durable header.
func createJournal(p string, hdr journalHeader) (*upJournal, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("client: journal: %w", err)
	}
	b, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("client: journal: %w", err)
	}
	if err := writeFileAtomic(p, append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	j := &upJournal{path: p, hdr: hdr, tags: map[uint64][16]byte{}}
	if err := j.open(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *upJournal) open() error {
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("client: journal: %w", err)
	}
	j.f = f
	return nil
}

// key returns the journal's content key.
func (j *upJournal) key() (format.ContentKey, bool) {
	b, err := hex.DecodeString(j.hdr.Key)
	if err != nil || len(b) != 32 {
		return format.ContentKey{}, false
	}
	return format.ContentKey(b), true
}

// recordTags durably appends the GCM tags of sealed chunks whose ciphertext is about to be sent.
// A chunk journaled before with another tag (the file changed under a resumed upload) is an
// error wrapping coffer.ErrConflict, and its ciphertext must not be sent. Concurrent calls share
// fsyncs (group commit).
func (j *upJournal) recordTags(idx []uint64, tags [][16]byte) error {
	var buf bytes.Buffer
	j.mu.Lock()
	for k, i := range idx {
		if old, ok := j.tags[i]; ok {
			if old != tags[k] {
				j.mu.Unlock()
				return fmt.Errorf("client: upload %s: the file changed during the upload (chunk %d): %w", j.hdr.Local, i, coffer.ErrConflict)
			}
			continue
		}
		j.tags[i] = tags[k]
		fmt.Fprintf(&buf, "t %d %x\n", i, tags[k])
	}
	if buf.Len() > 0 {
		if j.f == nil {
			j.mu.Unlock()
			return fmt.Errorf("client: journal %s: closed: %w", j.path, coffer.ErrInvalid)
		}
		if _, err := j.f.Write(buf.Bytes()); err != nil {
			j.mu.Unlock()
			return fmt.Errorf("client: journal: %w", err)
		}
		j.written++
	}
	mine := j.written
	j.mu.Unlock()

	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	done, upto, f := j.synced >= mine, j.written, j.f
	j.mu.Unlock()
	if done {
		return nil
	}
	if f == nil {
		return fmt.Errorf("client: journal %s: closed: %w", j.path, coffer.ErrInvalid)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("client: journal: %w", err)
	}
	j.mu.Lock()
	j.synced = max(j.synced, upto)
	j.mu.Unlock()
	return nil
}

// recordPack appends an acknowledged pack (not synced: losing it only costs a re-upload).
func (j *upJournal) recordPack(p journalPack) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.packs = append(j.packs, p)
	if _, err := fmt.Fprintf(j.f, "p %d %d %s\n", p.first, p.count, p.blob); err != nil {
		return fmt.Errorf("client: journal: %w", err)
	}
	return nil
}

// close closes the file; remove also deletes the journal (after the commit).
func (j *upJournal) close(remove bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	if remove {
		os.Remove(j.path)
	}
}

// verifyJournal re-reads every journaled chunk of fh, seals it again with the journal's key and
// reports whether all still give the journaled tag. The content key may be reused only then.
func verifyJournal(fh *os.File, j *upJournal, ciph *format.ContentCipher, size uint64) (bool, error) {
	cs := j.hdr.ChunkSize
	n := format.ChunkCount(size, cs)
	buf := make([]byte, int(cs)+16)
	for i, want := range j.tags {
		if i >= n {
			return false, nil
		}
		plen := int(format.ChunkPlainLen(size, cs, i))
		if _, err := fh.ReadAt(buf[:plen], int64(i)*int64(cs)); err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("client: upload: %w", err)
		} else if err != nil {
			return false, nil
		}
		if chunkTag(ciph, buf, plen, i, i == n-1) != want {
			return false, nil
		}
	}
	return true, nil
}

// chunkTag seals buf[:plen] in place as chunk i and returns its tag (buf needs plen+16 bytes;
// the plaintext is overwritten).
func chunkTag(ciph *format.ContentCipher, buf []byte, plen int, i uint64, last bool) [16]byte {
	ct := ciph.Seal(buf[:0], buf[:plen], i, last)
	return [16]byte(ct[plen:])
}

// reusable returns the journal's packs whose chunks all have journaled tags and whose layout is that of a
// pack of this file (consecutive chunks from offset 0), keyed by first chunk.
func (j *upJournal) reusable(size uint64) map[uint64]journalPack {
	out := map[uint64]journalPack{}
	n := format.ChunkCount(size, j.hdr.ChunkSize)
	for _, p := range j.packs {
		if p.first+p.count > n || p.count > packChunks {
			continue
		}
		ok := true
		for i := p.first; i < p.first+p.count; i++ {
			if _, h := j.tags[i]; !h {
				ok = false
			}
		}
		if ok {
			out[p.first] = p
		}
	}
	return out
}
