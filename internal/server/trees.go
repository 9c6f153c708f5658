package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net/http"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
)

func (s *Server) handleHead(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	h, err := s.treeAccess(r.Context(), sess, id, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.HeadInfo{Tree: h.Tree, Version: h.Version, Head: h.Head})
	return nil
}

func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	node, err := pathNode(r, "node")
	if err != nil {
		return err
	}
	if _, err := s.treeAccess(ctx, sess, id, false); err != nil {
		return err
	}
	cur, err := s.meta.Node(ctx, id, node)
	if errors.Is(err, coffer.ErrNotFound) {
		return errNotFound("node")
	}
	if err != nil {
		return internalError("versions: node", err)
	}
	older, err := s.meta.Versions(ctx, id, node)
	if err != nil {
		return internalError("versions", err)
	}
	writeJSON(w, http.StatusOK, api.VersionsResponse{Records: append([][]byte{cur.Record}, older...)})
	return nil
}

// listingState is the consistent head, buckets and folder bucket a listing starts with.
type listingState struct {
	head    *metastore.Head
	buckets *[256][32]byte
	bucket  []metastore.FolderSummary
	summary *metastore.FolderSummary // the folder's own entry; nil if it has no children
}

// readListingState reads head, buckets and bucket and checks that they belong together (a
// commit may land between the reads; then it reads again).
func (s *Server) readListingState(ctx context.Context, sess *metastore.Session, id coffer.TreeID, folder coffer.NodeID) (*listingState, error) {
	for range 5 {
		h, err := s.treeAccess(ctx, sess, id, false)
		if err != nil {
			return nil, err
		}
		st := &listingState{head: h}
		if st.buckets, err = s.meta.Buckets(ctx, id); err != nil {
			return nil, internalError("listing: buckets", err)
		}
		b := format.BucketOf(folder)
		if st.bucket, err = s.meta.Bucket(ctx, id, b); err != nil {
			return nil, internalError("listing: bucket", err)
		}
		for i := range st.bucket {
			if st.bucket[i].Folder == folder {
				st.summary = &st.bucket[i]
			}
		}
		if len(h.Head) == 0 {
			return st, nil
		}
		fh, err := format.ParseHead(h.Head)
		if err != nil {
			return nil, internalError("listing: stored head", err)
		}
		if format.StateRoot(st.buckets) == fh.StateRoot && bucketHash(b, st.bucket) == st.buckets[b] {
			return st, nil
		}
	}
	return nil, errUnavailable("the tree is changing too fast to list; retry")
}

// bucketHash is tree's bucket hash: 32 zero bytes for an empty bucket, else format.BucketHash.
func bucketHash(b uint8, fs []metastore.FolderSummary) [32]byte {
	if len(fs) == 0 {
		return [32]byte{}
	}
	return format.BucketHash(b, toFormatSummaries(fs))
}

func toFormatSummaries(fs []metastore.FolderSummary) []format.FolderSummary {
	out := make([]format.FolderSummary, len(fs))
	for i, f := range fs {
		out[i] = format.FolderSummary{Folder: f.Folder, Count: f.Count, Root: f.Root}
	}
	return out
}

// handleListing streams a folder listing (api.ListingContentType). The children are streamed
// from the store, not buffered; the server recomputes the folder root as it goes and, if the
// folder changed under it, aborts the response before FrameEnd so the client retries.
func (s *Server) handleListing(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	id, err := pathTree(r)
	if err != nil {
		return err
	}
	folder, err := pathNode(r, "folder")
	if err != nil {
		return err
	}
	st, err := s.readListingState(ctx, sess, id, folder)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", api.ListingContentType)
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 64<<10)
	writeFrame(bw, api.FrameHead, st.head.Head)
	all := make([]byte, 0, 256*32)
	for i := range st.buckets {
		all = append(all, st.buckets[i][:]...)
	}
	writeFrame(bw, api.FrameBuckets, all)
	bucket := make([]byte, 0, len(st.bucket)*56)
	for _, f := range st.bucket {
		bucket = append(bucket, f.Folder[:]...)
		bucket = binary.BigEndian.AppendUint64(bucket, f.Count)
		bucket = append(bucket, f.Root[:]...)
	}
	writeFrame(bw, api.FrameBucket, bucket)
	var entries []format.Entry
	if st.summary != nil {
		entries = make([]format.Entry, 0, st.summary.Count)
	}
	for n, err := range s.meta.Children(ctx, id, folder) {
		if err != nil {
			s.log.Error("listing: children", "tree", id.String(), "err", err)
			panic(http.ErrAbortHandler)
		}
		writeFrame(bw, api.FrameRecord, n.Record)
		entries = append(entries, format.Entry{Node: n.Node, Hash: n.Hash})
	}
	consistent := len(entries) == 0 && st.summary == nil
	if st.summary != nil {
		consistent = st.summary.Count == uint64(len(entries)) && format.FolderRoot(folder, entries) == st.summary.Root
	}
	if !consistent {
		s.log.Warn("listing: folder changed while streaming; aborting", "tree", id.String())
		panic(http.ErrAbortHandler)
	}
	writeFrame(bw, api.FrameEnd, nil)
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}

// writeFrame writes type, u32 length and payload. Write errors surface at Flush (bufio keeps the
// first one).
func writeFrame(w *bufio.Writer, typ byte, payload []byte) {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	w.Write(hdr[:])
	w.Write(payload)
}
