package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"coffer"
	"coffer/api"
)

// Body limits.
const (
	maxJSONBody   = 1 << 20  // ordinary JSON requests
	maxCommitBody = 64 << 20 // POST /v1/trees/{tree}/commit
)

// apiError is an error with its HTTP answer. Handlers return it; writeError renders it.
type apiError struct {
	status     int
	code       api.Code
	msg        string
	current    *api.HeadInfo
	retryAfter int
	cause      error // logged, never sent
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.code, e.msg, e.cause)
	}
	return fmt.Sprintf("%s: %s", e.code, e.msg)
}

func (e *apiError) Unwrap() error { return e.cause }

func errBadRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: api.CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

func errNotFound(what string) *apiError {
	return &apiError{status: http.StatusNotFound, code: api.CodeNotFound, msg: what + " not found"}
}

func errInvalidCommit(format string, args ...any) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: api.CodeInvalidCommit, msg: fmt.Sprintf(format, args...)}
}

func errUnavailable(msg string) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable, msg: msg}
}

var errUnauthorized = &apiError{status: http.StatusUnauthorized, code: api.CodeUnauthorized, msg: "missing, expired or revoked session"}

var errLoginFailed = &apiError{status: http.StatusUnauthorized, code: api.CodeLoginFailed, msg: "login failed"}

// internalError wraps an unexpected store or I/O failure. Storage-full errors become 507.
func internalError(op string, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	switch {
	case errors.Is(err, coffer.ErrUnavailable):
		return &apiError{status: http.StatusInsufficientStorage, code: api.CodeUnavailable, msg: "server storage full", cause: fmt.Errorf("%s: %w", op, err)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable, msg: "request cancelled", cause: fmt.Errorf("%s: %w", op, err)}
	}
	return &apiError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "internal error", cause: fmt.Errorf("%s: %w", op, err)}
}

// writeError renders err as an api.Error. Errors that are not *apiError become 500.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = internalError("handler", err)
	}
	if info := infoFrom(r.Context()); info != nil && ae.status >= 500 {
		info.err = ae
		if ae.cause != nil && info.metrics != nil && !errors.Is(ae.cause, context.Canceled) &&
			!errors.Is(ae.cause, context.DeadlineExceeded) {
			info.metrics.storeErrors.Add(1)
		}
	}
	body := api.Error{Code: ae.code, Message: ae.msg, Current: ae.current, RetryAfter: ae.retryAfter}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	writeJSON(w, ae.status, body)
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads one JSON value of at most limit bytes into v, rejecting unknown fields and
// trailing data. Errors are *apiError (400 naming the problem, 413 over the limit).
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if r.ContentLength > limit {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge, msg: fmt.Sprintf("request body over %d bytes", limit)}
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err, limit)
		}
		return errBadRequest("request body: trailing data after the JSON value")
	}
	return nil
}

func jsonError(err error, limit int64) *apiError {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge, msg: fmt.Sprintf("request body over %d bytes", limit)}
	case errors.As(err, &se):
		return errBadRequest("request body: malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return errBadRequest("request body: field %q: want %s", te.Field, te.Type)
		}
		return errBadRequest("request body: want a JSON %s", te.Type)
	case errors.Is(err, io.EOF):
		return errBadRequest("request body: empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errBadRequest("request body: truncated JSON")
	}
	// Unknown fields and ID parse errors ("coffer: tree id ...: invalid argument").
	return errBadRequest("request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// pathTree and friends parse path parameters.
func pathTree(r *http.Request) (coffer.TreeID, error) {
	id, err := coffer.ParseTreeID(r.PathValue("tree"))
	if err != nil {
		return id, errBadRequest("path: %v", err)
	}
	return id, nil
}

func pathNode(r *http.Request, name string) (coffer.NodeID, error) {
	id, err := coffer.ParseNodeID(r.PathValue(name))
	if err != nil {
		return id, errBadRequest("path: %v", err)
	}
	return id, nil
}

// ---- per-request info, logging, recovery ----

type reqInfoKey struct{}

// reqInfo is filled in by handlers for the request log line.
type reqInfo struct {
	session string      // session ID prefix
	err     error       // cause of a 5xx
	metrics *metrics    // counts store errors
	phases  *phaseClock // commit phase timings (nil: off or not a commit)
}

func infoFrom(ctx context.Context) *reqInfo {
	info, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return info
}

// respWriter records the status and byte count and passes Flush through (SSE).
type respWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *respWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom lets io.Copy reach the connection's ReadFrom, so blob files are sent with sendfile(2)
// instead of being copied through user space.
func (w *respWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

// probeWriter captures what the mux's built-in 404/405 handlers would answer.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

// middleware adds the request log line, panic recovery and JSON bodies for 404 and 405.
func (s *Server) middleware(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{metrics: s.metrics}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
		rw := &respWriter{ResponseWriter: w}
		h, pattern := mux.Handler(r)
		if s.phases != nil && pattern == commitPattern {
			info.phases = newPhaseClock(start)
		}
		body := &countingBody{ReadCloser: r.Body}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = body
		}
		defer func() {
			status := rw.status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.observe(pattern, status, time.Since(start), body.n, rw.bytes)
			if info.phases != nil && status == http.StatusOK {
				s.phases.add(info.phases, time.Since(start))
			}
		}()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					s.logRequest(r, pattern, rw, start, info, "aborted")
					panic(p)
				}
				s.log.Error("panic", "method", r.Method, "route", pattern, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if rw.status == 0 {
					writeError(rw, r, &apiError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "internal error"})
				}
			}
			s.logRequest(r, pattern, rw, start, info, "")
		}()
		if pattern == "" {
			probe := &probeWriter{header: http.Header{}}
			h.ServeHTTP(probe, r)
			switch probe.status {
			case http.StatusMethodNotAllowed:
				if allow := probe.header.Get("Allow"); allow != "" {
					rw.Header().Set("Allow", allow)
				}
				writeError(rw, r, &apiError{status: http.StatusMethodNotAllowed, code: api.CodeBadRequest, msg: "method " + r.Method + " not allowed"})
				return
			case http.StatusNotFound:
				writeError(rw, r, &apiError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "no such endpoint"})
				return
			}
		}
		if prio := requestPriority(r); prio >= 0 && s.admit != nil {
			s.metrics.admitWaiting.Add(1)
			ok := s.admit.acquire(r.Context(), prio)
			s.metrics.admitWaiting.Add(-1)
			if !ok {
				if err := r.Context().Err(); err != nil { // the client gave up while it waited
					writeError(rw, r, internalError("admission", err))
					return
				}
				s.metrics.admitRefused.Add(1)
				writeError(rw, r, errOverloaded)
				return
			}
			defer s.admit.release()
		}
		info.phases.mark(phQueue)
		mux.ServeHTTP(rw, r)
	})
}

func (s *Server) logRequest(r *http.Request, pattern string, rw *respWriter, start time.Time, info *reqInfo, note string) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", pattern),
		slog.Int("status", status),
		slog.Int64("bytes", rw.bytes),
		slog.Duration("duration", time.Since(start)),
	}
	if info.session != "" {
		attrs = append(attrs, slog.String("session", info.session))
	}
	if note != "" {
		attrs = append(attrs, slog.String("note", note))
	}
	level := slog.LevelInfo
	if info.err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", info.err.Error()))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}
