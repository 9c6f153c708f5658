package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"coffer"
	"coffer/api"
	"coffer/internal/blobstore"
	"coffer/internal/metastore"
)

// maxCheckBlobs bounds one POST /v1/blobs/check.
const maxCheckBlobs = 10000

var errQuota = &apiError{status: http.StatusInsufficientStorage, code: api.CodeQuota, msg: "quota exceeded"}

// handleBlobPut stores the body as blob {id}, owned by the tree's owner. The client names the
// blob (the server does not check the name); the server checks the body's length and CRC-32C
// while streaming it to the store, and records that CRC-32C with the blob, so that fsck can
// check the stored bytes whatever the ID is derived from. The bytes are durable in the blob
// store before the bookkeeping is written, so bookkeeping never names missing bytes, and a blob
// already stored is never replaced: storing it again is acknowledged only if the stored bytes
// have the size and CRC-32C the client sent (see confirmStored).
func (s *Server) handleBlobPut(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	bid, err := coffer.ParseBlobID(r.PathValue("id"))
	if err != nil {
		return errBadRequest("path: %v", err)
	}
	crc, err := api.ParseCRC32C(r.Header.Get(api.HeaderCRC32C))
	if err != nil {
		return errBadRequest("header %s: %v", api.HeaderCRC32C, err)
	}
	size := r.ContentLength
	switch {
	case size < 0:
		return &apiError{status: http.StatusLengthRequired, code: api.CodeBadRequest, msg: "Content-Length is required"}
	case size > api.MaxBlobSize:
		return &apiError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge, msg: fmt.Sprintf("blob over %d bytes", api.MaxBlobSize)}
	case size == 0:
		return errBadRequest("body: a blob must not be empty")
	}
	h, err := s.treeAccess(ctx, sess, id, true)
	if err != nil {
		return err
	}
	owner, err := s.account(ctx, h.Owner)
	if err != nil {
		return err
	}
	// Refuse another account's blob before reading the body (checked again under the lock).
	if info, err := s.meta.Blob(ctx, bid); err == nil && info.Owner != owner.ID {
		return errBlobTaken(bid)
	} else if err != nil && !errors.Is(err, coffer.ErrNotFound) {
		return internalError("blob put: lookup", err)
	}
	if owner.Quota > 0 {
		used, _, err := s.meta.Usage(ctx, owner.ID)
		if err != nil {
			return internalError("blob put: usage", err)
		}
		if used+size > owner.Quota {
			return errQuota
		}
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, size)}
	created, err := s.blobs.Put(ctx, bid, body, size, crc)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return &apiError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge, msg: "body longer than Content-Length"}
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, coffer.ErrCorrupt) && body.n < size:
			return errBadRequest("body: shorter than Content-Length")
		case errors.Is(err, coffer.ErrCorrupt):
			return errBadRequest("body: blob %s: the %d bytes received do not have the CRC-32C of header %s (%s): corrupted in transfer",
				bid, size, api.HeaderCRC32C, api.FormatCRC32C(crc))
		}
		return internalError("blob put", err)
	}

	// Bookkeeping, serialised against GC deleting the same blob (see collectOne).
	unlock, err := s.lockBlob(ctx, bid)
	if err != nil {
		return internalError("blob put: lock", err)
	}
	defer unlock()
	stored, err := s.blobs.Stat(ctx, bid)
	if errors.Is(err, coffer.ErrNotFound) {
		return errUnavailable("blob was garbage-collected during the upload; retry")
	} else if err != nil {
		return internalError("blob put: stat", err)
	}
	info, err := s.meta.Blob(ctx, bid)
	recorded := err == nil
	if err != nil && !errors.Is(err, coffer.ErrNotFound) {
		return internalError("blob put: lookup", err)
	}
	switch {
	case recorded && info.Owner != owner.ID:
		if created {
			// The record's bytes were missing and these took their place: they are not the
			// other account's blob.
			s.dropUnrecorded(ctx, bid)
		}
		return errBlobTaken(bid)
	case !created:
		if err := s.confirmStored(ctx, bid, recorded, stored, size, crc); err != nil {
			return err
		}
	}
	// The stored bytes have crc: the store checked them against it (created), or confirmStored
	// read them back. A record that exists already keeps its own CRC-32C (see AddBlob).
	err = s.meta.AddBlob(ctx, metastore.BlobInfo{ID: bid, Owner: owner.ID, Size: size, Created: s.now(), CRC32C: crc, HasCRC: true})
	switch {
	case errors.Is(err, coffer.ErrExist):
		return errBlobTaken(bid)
	case errors.Is(err, coffer.ErrQuota):
		if !recorded {
			s.dropUnrecorded(ctx, bid) // nobody recorded these bytes (we hold the lock): do not keep them
		}
		return errQuota
	case err != nil:
		return internalError("blob put: add", err)
	}
	s.metrics.blobPuts.Add(1)
	s.metrics.blobPutBytes.Add(size)
	writeJSON(w, http.StatusOK, api.BlobPutResponse{Blob: bid, Size: size})
	return nil
}

// errBlobTaken answers an upload of a blob ID another account owns.
func errBlobTaken(id coffer.BlobID) error {
	return &apiError{status: http.StatusConflict, code: api.CodeExists, msg: "blob " + id.String() + " belongs to another account"}
}

// confirmStored decides about an upload that found its ID already stored (the store never
// replaces a blob). The stored bytes count as the upload's only if they have its size and CRC-32C
// (a read-back: rare, as clients skip the blobs they stored already). Otherwise, if no record
// names them (left by an interrupted upload, or by a concurrent one of other bytes under the same
// ID, or being collected), they are deleted and the client retries (503); if the caller's own
// record names them, the upload conflicts with its account's earlier blob (409). The caller holds
// the blob's lock.
func (s *Server) confirmStored(ctx context.Context, id coffer.BlobID, recorded bool, stored, size int64, crc uint32) error {
	same := stored == size
	if same {
		rc, err := s.blobs.Get(ctx, id, 0, -1)
		if err != nil {
			return internalError("blob put: read back "+id.String(), err)
		}
		c := crc32.New(blobstore.CRC32C)
		_, err = io.Copy(c, rc)
		rc.Close()
		if err != nil {
			return internalError("blob put: read back "+id.String(), err)
		}
		same = c.Sum32() == crc
	}
	switch {
	case same:
		return nil
	case recorded:
		return &apiError{status: http.StatusConflict, code: api.CodeExists,
			msg: "blob " + id.String() + " is stored already with other bytes"}
	}
	s.dropUnrecorded(ctx, id)
	return errUnavailable("blob " + id.String() + ": other bytes of an unfinished upload were in the way; retry")
}

// dropUnrecorded deletes the bytes of a blob no record names. The caller holds the blob's lock.
func (s *Server) dropUnrecorded(ctx context.Context, id coffer.BlobID) {
	if err := s.blobs.Delete(ctx, id); err != nil {
		s.log.Warn("blob put: delete unrecorded blob", "blob", id.String(), "err", err)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// handleBlobCheck answers which of the listed blobs the caller already stored. A present blob's
// creation time is refreshed so GC does not collect it before the commit that references it.
func (s *Server) handleBlobCheck(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	var req api.BlobsRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if len(req.Blobs) > maxCheckBlobs {
		return errBadRequest("blobs: more than %d ids", maxCheckBlobs)
	}
	resp := api.BlobsResponse{Present: []coffer.BlobID{}}
	// In ID order, so that each lock partition (first byte) is taken once per request: with a
	// cluster-wide BlobLocker a lock costs database round trips.
	ids := slices.Clone(req.Blobs)
	slices.SortFunc(ids, func(a, b coffer.BlobID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	var unlock func()
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	for i, id := range ids {
		if unlock == nil || id[0] != ids[i-1][0] {
			if unlock != nil {
				unlock()
				unlock = nil
			}
			var err error
			if unlock, err = s.lockBlob(r.Context(), id); err != nil {
				return internalError("blob check: lock", err)
			}
		}
		present, err := s.refreshBlob(r, sess.Account, id)
		if err != nil {
			return err
		}
		if present {
			resp.Present = append(resp.Present, id)
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// refreshBlob refreshes the creation time of id if acct owns it. The caller holds id's lock.
func (s *Server) refreshBlob(r *http.Request, acct coffer.AccountID, id coffer.BlobID) (bool, error) {
	ctx := r.Context()
	info, err := s.meta.Blob(ctx, id)
	if errors.Is(err, coffer.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internalError("blob check", err)
	}
	if info.Owner != acct {
		return false, nil
	}
	info.Created = s.now()
	if err := s.meta.AddBlob(ctx, info); err != nil {
		if errors.Is(err, coffer.ErrQuota) || errors.Is(err, coffer.ErrExist) {
			return false, nil
		}
		return false, internalError("blob check: refresh", err)
	}
	return true, nil
}

func (s *Server) handleBlobGet(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	id, err := coffer.ParseBlobID(r.PathValue("id"))
	if err != nil {
		return errBadRequest("path: %v", err)
	}
	info, err := s.meta.Blob(ctx, id)
	if errors.Is(err, coffer.ErrNotFound) || (err == nil && info.Owner != sess.Account) {
		return errNotFound("blob")
	}
	if err != nil {
		return internalError("blob get", err)
	}
	off, n, partial, err := parseRange(r.Header.Get("Range"), info.Size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
		return &apiError{status: http.StatusRequestedRangeNotSatisfiable, code: api.CodeBadRequest, msg: "Range: " + err.Error()}
	}
	rc, err := s.blobs.Get(ctx, id, off, n)
	if err != nil {
		return internalError("blob get: bytes of "+id.String(), err)
	}
	defer rc.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Length", strconv.FormatInt(n, 10))
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("ETag", `"`+id.String()+`"`)
	hdr.Set("Cache-Control", "private, max-age=31536000, immutable")
	status := http.StatusOK
	if partial {
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, info.Size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if _, err := io.Copy(w, rc); err != nil {
		// Headers are out: the client sees a short body.
		s.log.Warn("blob get: copy", "blob", id.String(), "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// parseRange parses a single "bytes=a-b", "bytes=a-" or "bytes=-n" range against size. An empty
// header is the whole blob. Multiple ranges are not supported.
func parseRange(h string, size int64) (off, n int64, partial bool, err error) {
	if h == "" {
		return 0, size, false, nil
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0, 0, false, errors.New("only bytes ranges are supported")
	}
	if strings.Contains(spec, ",") {
		return 0, 0, false, errors.New("only one range is supported")
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, false, errors.New("malformed range")
	}
	if first == "" { // suffix: the last n bytes
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k <= 0 {
			return 0, 0, false, errors.New("malformed suffix range")
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, 0, false, errors.New("malformed range start")
	}
	if a >= size {
		return 0, 0, false, errors.New("range starts past the end")
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, 0, false, errors.New("malformed range end")
		}
		b = min(b, size-1)
	}
	return a, b - a + 1, true, nil
}
