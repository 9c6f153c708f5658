package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// recordConn is a net.Conn (only Write used) recording the size of each Write.
type recordConn struct {
	net.Conn
	buf    bytes.Buffer
	writes []int
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	return c.buf.Write(p)
}

// TestBodyConnReadFrom: a memBody under its Content-Length limit goes out in one Write of the
// caller's bytes; anything else (another reader, or a limit shorter than the body) takes the
// ordinary copy, which stops at the limit.
func TestBodyConnReadFrom(t *testing.T) {
	b := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.6 MB
	rc := &recordConn{}
	lr := &io.LimitedReader{R: memBody{bytes.NewReader(b)}, N: int64(len(b))}
	n, err := bodyConn{rc}.ReadFrom(lr)
	if err != nil || n != int64(len(b)) || !bytes.Equal(rc.buf.Bytes(), b) || lr.N != 0 {
		t.Fatalf("memBody: wrote %d, %v, N left %d", n, err, lr.N)
	}
	if len(rc.writes) != 1 {
		t.Errorf("memBody went out in %d writes, want 1", len(rc.writes))
	}

	for _, c := range []struct {
		r    io.Reader
		n    int64
		want int
	}{
		{strings.NewReader(string(b)), int64(len(b)), len(b)},        // not a memBody
		{memBody{bytes.NewReader(b)}, int64(len(b) - 7), len(b) - 7}, // a body longer than its limit
	} {
		rc := &recordConn{}
		lr := &io.LimitedReader{R: c.r, N: c.n}
		n, err := bodyConn{rc}.ReadFrom(lr)
		if err != nil || n != int64(c.want) || !bytes.Equal(rc.buf.Bytes(), b[:c.want]) {
			t.Fatalf("%T limited to %d: wrote %d, %v", c.r, c.n, n, err)
		}
		if len(rc.writes) < 2 {
			t.Errorf("%T limited to %d: %d writes, want the ordinary buffered copy", c.r, c.n, len(rc.writes))
		}
	}
}

// TestRequestBodiesArriveWhole sends bodies of several sizes through the default HTTP client
// (whose connections are bodyConns) and checks that the server receives them exactly, also
// when the first attempt fails and the request is retried from GetBody.
func TestRequestBodiesArriveWhole(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server read: %v", err)
		}
		if r.ContentLength != int64(len(b)) || len(r.TransferEncoding) != 0 {
			t.Errorf("Content-Length %d, %d bytes, Transfer-Encoding %v", r.ContentLength, len(b), r.TransferEncoding)
		}
		if calls.Add(1) == 1 && r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		sum := sha256.Sum256(b)
		io.WriteString(w, hex.EncodeToString(sum[:]))
	}))
	defer srv.Close()
	tr, err := newTransport(srv.URL, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, 3000, 4096, 5<<20 + 3} {
		body := bytes.Repeat([]byte{byte(size)}, size)
		for _, q := range []string{"", "?fail=1"} {
			calls.Store(0)
			resp, err := tr.do(context.Background(), call{method: "PUT", path: "/x" + q, body: body, retry: true})
			if err != nil {
				t.Fatalf("%d bytes%s: %v", size, q, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			sum := sha256.Sum256(body)
			if string(got) != hex.EncodeToString(sum[:]) {
				t.Fatalf("%d bytes%s: the server received other bytes", size, q)
			}
		}
	}
}
