package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// gcBatch is how many blobs one CollectableBlobs call returns.
const gcBatch = 500

// RunGC runs CollectGarbage every GCInterval until ctx ends. Errors are logged, not returned.
func (s *Server) RunGC(ctx context.Context) {
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("gc", "err", err)
			}
		}
	}
}

// CollectGarbage makes one pass: it deletes every blob older than GCGrace that no live or kept
// record references, and returns how many it deleted. The store removes the bookkeeping first
// (atomically with respect to commits), so no commit can reference a blob being deleted.
func (s *Server) CollectGarbage(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.cfg.GCGrace)
	deleted := 0
	var freed int64
	for {
		batch, err := s.meta.CollectableBlobs(ctx, cutoff, gcBatch)
		if err != nil {
			return deleted, fmt.Errorf("server: gc: %w", err)
		}
		var failed error
		for _, b := range batch {
			ok, err := s.collectOne(ctx, b)
			if err != nil {
				// The bookkeeping is gone already: the file is now an orphan that fsck reports.
				s.log.Error("gc: delete blob", "blob", b.ID.String(), "err", err)
				s.metrics.storeErrors.Add(1)
				failed = fmt.Errorf("server: gc: blob %v: %w", b.ID, err)
				continue
			}
			if ok {
				s.metrics.gcDeleted.Add(1)
				deleted++
				freed += b.Size
			}
		}
		if failed != nil {
			return deleted, failed
		}
		if len(batch) < gcBatch {
			break
		}
	}
	if deleted > 0 {
		s.log.Info("gc", "deleted", deleted, "bytes", freed)
	}
	return deleted, nil
}

// lockBlob takes the lock of id's partition (its first byte): the process-local mutex, then,
// with Config.BlobLocker, the cluster-wide lock, so that uploads and GC deletes of one blob are
// ordered across every node sharing the stores.
func (s *Server) lockBlob(ctx context.Context, id coffer.BlobID) (func(), error) {
	mu := &s.blobLocks[id[0]]
	mu.Lock()
	if s.cfg.BlobLocker == nil {
		return mu.Unlock, nil
	}
	unlock, err := s.cfg.BlobLocker.LockBlob(ctx, id[0])
	if err != nil {
		mu.Unlock()
		return nil, err
	}
	return func() { unlock(); mu.Unlock() }, nil
}

// collectOne deletes the bytes of a blob whose bookkeeping GC removed, unless an upload recorded
// it again in the meantime (uploads write bookkeeping under the same lock).
func (s *Server) collectOne(ctx context.Context, b metastore.BlobInfo) (bool, error) {
	unlock, err := s.lockBlob(ctx, b.ID)
	if err != nil {
		return false, err
	}
	defer unlock()
	if _, err := s.meta.Blob(ctx, b.ID); err == nil {
		return false, nil
	} else if !errors.Is(err, coffer.ErrNotFound) {
		return false, err
	}
	if err := s.blobs.Delete(ctx, b.ID); err != nil {
		return false, err
	}
	return true, nil
}
