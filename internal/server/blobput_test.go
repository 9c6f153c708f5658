package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/internal/blobstore"
)

// readStored returns the bytes the blob store holds under id (fatal if none).
func readStored(t *testing.T, e *env, id coffer.BlobID) []byte {
	t.Helper()
	rc, err := e.blobs.Get(t.Context(), id, 0, -1)
	if err != nil {
		t.Fatalf("stored blob %s: %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertNotStored checks that neither the blob store nor the bookkeeping has id.
func assertNotStored(t *testing.T, e *env, id coffer.BlobID) {
	t.Helper()
	if _, err := e.blobs.Stat(t.Context(), id); !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("blob %s: bytes stored (%v)", id, err)
	}
	if _, err := e.meta.Blob(t.Context(), id); !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("blob %s: recorded (%v)", id, err)
	}
}

// TestBlobPutRequestErrors: the upload names its blob and the body's CRC-32C; a malformed name or
// checksum, or a body that does not match them, is a 400 naming the fault and stores nothing.
func TestBlobPutRequestErrors(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	data := []byte("the bytes of one encrypted pack")
	id := coffer.BlobID(sha256.Sum256(data))
	prefix := treePath(u, "")

	for _, c := range []struct {
		name, path, crc, want string
	}{
		{"no checksum header", "/blobs/" + id.String(), "", "Coffer-CRC32C"},
		{"uppercase checksum", "/blobs/" + id.String(), "ABCDEF01", "Coffer-CRC32C"},
		{"short checksum", "/blobs/" + id.String(), crcOf(data)[:7], "Coffer-CRC32C"},
		{"non-hex checksum", "/blobs/" + id.String(), "zzzzzzzz", "Coffer-CRC32C"},
		{"bad id", "/blobs/xyz", crcOf(data), "path"},
		{"short id", "/blobs/" + id.String()[:63], crcOf(data), "path"},
	} {
		h := http.Header{}
		if c.crc != "" {
			h.Set(api.HeaderCRC32C, c.crc)
		}
		st, ae := e.call("PUT", prefix+c.path, u.token, data, nil, h)
		wantErr(t, st, ae, 400, api.CodeBadRequest)
		if !strings.Contains(ae.Message, c.want) {
			t.Errorf("%s: message %q does not name %q", c.name, ae.Message, c.want)
		}
	}

	// A body whose CRC-32C is not the header's: corrupted in transfer.
	bad := crcOf(append([]byte{}, data[:len(data)-1]...))
	st, ae := e.putBlobAs(prefix, u.token, id, bad, data, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	if !strings.Contains(ae.Message, "CRC-32C") || !strings.Contains(ae.Message, id.String()) {
		t.Errorf("CRC mismatch: message %q should name the check and the blob", ae.Message)
	}
	assertNotStored(t, e, id)

	// A body shorter than its Content-Length (the connection ends early).
	st, msg := shortBodyPut(t, e, prefix+"/blobs/"+id.String(), u.token, crcOf(data), data, 10)
	if st != 400 || !strings.Contains(msg, "shorter than Content-Length") {
		t.Errorf("short body: %d %q", st, msg)
	}
	assertNotStored(t, e, id)

	// The right request then works, and echoes the client's ID and size.
	var put api.BlobPutResponse
	if st, ae := e.putBlob(prefix, u.token, data, &put); st != 200 || put.Blob != id || put.Size != int64(len(data)) {
		t.Fatalf("upload: %d %+v %+v", st, ae, put)
	}
}

// shortBodyPut sends a blob upload whose Content-Length exceeds the body by missing bytes, then
// half-closes the connection, and returns the status and error message.
func shortBodyPut(t *testing.T, e *env, path, token, crc string, data []byte, missing int) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	head := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
		path, token, api.HeaderCRC32C, crc, len(data)+missing)
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(data); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBlobPutNeverOverwrites: the server stores a blob under the ID the client names without
// hashing it, so a second upload under a stored ID, with other bytes or by another account, must
// never change the stored bytes.
func TestBlobPutNeverOverwrites(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.signup("alice"), e.signup("bob")
	data := bytes.Repeat([]byte("alice's pack "), 100)
	p, st, ae := alice.upload(data)
	if st != 200 {
		t.Fatalf("upload: %d %+v", st, ae)
	}
	id := p.Blob
	others := [][]byte{bytes.Repeat([]byte("ALICE'S PACK "), 100), []byte("shorter"), bytes.Repeat([]byte("longer "), 500)}

	// Another account, with other bytes or the same ones: 409, before or after reading the body.
	for _, b := range append(others, data) {
		st, ae := e.putBlobAs(treePath(bob, ""), bob.token, id, crcOf(b), b, nil)
		wantErr(t, st, ae, http.StatusConflict, api.CodeExists)
		if !strings.Contains(ae.Message, "another account") {
			t.Errorf("bob's upload of %s: message %q", id, ae.Message)
		}
	}
	// The owner again with other bytes (a lying or broken client): 409, bytes kept.
	for _, b := range others {
		st, ae := e.putBlobAs(treePath(alice, ""), alice.token, id, crcOf(b), b, nil)
		wantErr(t, st, ae, http.StatusConflict, api.CodeExists)
		if !strings.Contains(ae.Message, "other bytes") {
			t.Errorf("alice's upload of other bytes: message %q", ae.Message)
		}
	}
	if got := readStored(t, e, id); !bytes.Equal(got, data) {
		t.Fatalf("the stored blob changed (%d bytes)", len(got))
	}
	if info, err := e.meta.Blob(t.Context(), id); err != nil || info.Owner != alice.acct || info.Size != int64(len(data)) {
		t.Fatalf("record after the refused uploads: %+v %v", info, err)
	}
	// The same bytes again: the idempotent no-op.
	if p2, st, ae := alice.upload(data); st != 200 || p2 != p {
		t.Fatalf("re-upload: %d %+v %+v", st, ae, p2)
	}
}

// TestBlobPutUnrecordedBytes: bytes stored under an ID that no record names (an upload that died
// before its bookkeeping) are taken over by an upload only if they are its bytes; other bytes are
// deleted and the client told to retry, which then stores its own.
func TestBlobPutUnrecordedBytes(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	ctx := t.Context()
	storeAs := func(id coffer.BlobID, b []byte) {
		t.Helper()
		if _, err := e.blobs.Put(ctx, id, bytes.NewReader(b), int64(len(b)), crc32.Checksum(b, blobstore.CRC32C)); err != nil {
			t.Fatal(err)
		}
	}

	// Matching leftovers: acknowledged at once and recorded for the uploader.
	same := []byte("a pack whose upload died after the store")
	sameID := coffer.BlobID(sha256.Sum256(same))
	storeAs(sameID, same)
	if p, st, ae := u.upload(same); st != 200 || p.Blob != sameID {
		t.Fatalf("upload over matching leftovers: %d %+v", st, ae)
	}
	if info, err := e.meta.Blob(ctx, sameID); err != nil || info.Owner != u.acct {
		t.Fatalf("record: %+v %v", info, err)
	}

	// Other bytes in the way (same size, then another size): 503, removed; the retry stores.
	for _, c := range []struct{ data, junk []byte }{
		{[]byte("the real pack"), []byte("THE REAL PACK")},
		{[]byte("the real pack, longer"), []byte("junk")},
	} {
		id := coffer.BlobID(sha256.Sum256(c.data))
		storeAs(id, c.junk)
		_, st, ae := u.upload(c.data)
		wantErr(t, st, ae, http.StatusServiceUnavailable, api.CodeUnavailable)
		assertNotStored(t, e, id)
		if _, st, ae := u.upload(c.data); st != 200 {
			t.Fatalf("retry: %d %+v", st, ae)
		}
		if got := readStored(t, e, id); !bytes.Equal(got, c.data) {
			t.Fatalf("stored after the retry: %q", got)
		}
	}
}
