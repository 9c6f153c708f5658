package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"coffer"
	"coffer/api"
)

// Retry policy of idempotent requests.
const (
	defaultAttempts = 6
	backoffBase     = 100 * time.Millisecond
	backoffMax      = 3 * time.Second
	maxErrorBody    = 64 << 10
	maxJSONBody     = 64 << 20
)

// defaultHTTPClient has connection timeouts but no overall deadline (a transfer may be long).
func defaultHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialBodyConn(&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr}
}

// dialBodyConn wraps d's connections in bodyConn.
func dialBodyConn(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return bodyConn{c}, nil
	}
}

// bodyConn is a connection that writes a request body held in memory (memBody) with one write
// call from the caller's bytes. net/http hands a body with a Content-Length to the connection as an
// io.LimitedReader, which hides the bytes.Reader's WriterTo, so the connection would otherwise copy
// it through a 32 KiB buffer: one memmove of every uploaded byte and a write system call per
// 32 KiB (about 32,000 per GiB). Other readers (and TLS, which wraps the connection) take the
// ordinary path.
type bodyConn struct{ net.Conn }

// ReadFrom implements io.ReaderFrom.
func (c bodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if b, ok := lr.R.(memBody); ok && int64(b.Len()) <= lr.N {
			n, err := b.WriteTo(c.Conn)
			lr.N -= n
			return n, err
		}
	}
	return io.Copy(c.Conn, r)
}

// memBody is a request body held in memory; see bodyConn.
type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

// transport sends API requests: JSON encoding, bearer auth, error mapping and retries.
type transport struct {
	base     string
	hc       *http.Client
	log      *slog.Logger
	attempts int

	mu    sync.RWMutex
	token string
}

func newTransport(server string, hc *http.Client, log *slog.Logger) (*transport, error) {
	server = strings.TrimRight(strings.TrimSpace(server), "/")
	if server == "" {
		return nil, fmt.Errorf("client: config: Server is required")
	}
	if !strings.HasPrefix(server, "http://") && !strings.HasPrefix(server, "https://") {
		return nil, fmt.Errorf("client: config: Server %q must start with http:// or https://", server)
	}
	if hc == nil {
		hc = defaultHTTPClient()
	}
	return &transport{base: server, hc: hc, log: log, attempts: defaultAttempts}, nil
}

func (t *transport) setToken(tok string) {
	t.mu.Lock()
	t.token = tok
	t.mu.Unlock()
}

func (t *transport) getToken() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.token
}

// call is one request.
type call struct {
	method string
	path   string // starting with "/", including any query
	body   []byte // nil: no body
	ctype  string
	header http.Header
	// retry allows retrying on network errors and 502/503/504 (idempotent or CAS-protected).
	retry bool
	// noAuth omits the Authorization header (login, signup).
	noAuth bool
}

// do sends c and returns a 2xx response (the caller closes its body) or an error: a *ServerError
// for an API error, the context's error, or a network error after the retries.
func (t *transport) do(ctx context.Context, c call) (*http.Response, error) {
	attempts := 1
	if c.retry {
		attempts = t.attempts
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			d := min(backoffBase<<(i-1), backoffMax)
			t.log.Debug("client: retrying request", "method", c.method, "attempt", i+1, "after", d, "err", lastErr)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
		}
		req, err := http.NewRequestWithContext(ctx, c.method, t.base+c.path, nil)
		if err != nil {
			return nil, fmt.Errorf("client: %s %s: %w", c.method, routeOf(c.path), err)
		}
		if c.body != nil {
			if body := c.body; len(body) > 0 {
				req.Body = memBody{bytes.NewReader(body)}
				req.GetBody = func() (io.ReadCloser, error) { return memBody{bytes.NewReader(body)}, nil }
				req.ContentLength = int64(len(body))
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
		}
		for k, vs := range c.header {
			req.Header[k] = vs
		}
		if !c.noAuth {
			if tok := t.getToken(); tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
		}
		resp, err := t.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = fmt.Errorf("client: %s %s: %w", c.method, routeOf(c.path), err)
			continue
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		serr := readServerError(resp)
		if c.retry && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable ||
			resp.StatusCode == http.StatusGatewayTimeout) {
			lastErr = fmt.Errorf("client: %s %s: %w", c.method, routeOf(c.path), serr)
			continue
		}
		return nil, fmt.Errorf("client: %s %s: %w", c.method, routeOf(c.path), serr)
	}
	return nil, lastErr
}

// readServerError consumes and closes resp's body and returns the API error it carries.
func readServerError(resp *http.Response) *ServerError {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &ServerError{Status: resp.StatusCode}
	var ae api.Error
	if json.Unmarshal(b, &ae) == nil && ae.Code != "" {
		e.Code, e.Message, e.Current, e.RetryAfter = ae.Code, ae.Message, ae.Current, ae.RetryAfter
	} else {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 || e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return e
}

// routeOf strips the query string (which may hold IDs only, but keeps messages short).
func routeOf(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// json sends in (nil: no body) and decodes the answer into out (nil: discard).
func (t *transport) json(ctx context.Context, method, path string, in, out any, retry, noAuth bool) error {
	c := call{method: method, path: path, retry: retry, noAuth: noAuth}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode %s: %w", path, err)
		}
		c.body, c.ctype = b, "application/json"
	}
	resp, err := t.do(ctx, c)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody))
	if err := dec.Decode(out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("client: %s %s: decode response: %v: %w", method, routeOf(path), err, errCorruptResponse)
	}
	return nil
}

// errCorruptResponse is wrapped by undecodable answers.
var errCorruptResponse = fmt.Errorf("malformed server response: %w", coffer.ErrCorrupt)

// decodeJSONBody decodes a JSON response body into out.
func decodeJSONBody(resp *http.Response, out any) error {
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody)).Decode(out); err != nil {
		return fmt.Errorf("decode response: %v: %w", err, errCorruptResponse)
	}
	return nil
}
