package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"coffer"
	"coffer/format"
	"coffer/internal/blobstore"
	"coffer/internal/metastore"
)

// Fsck checks a stopped server's data directory and writes one line per problem to w, then a
// summary. It checks that every recorded blob exists with its recorded size and that its bytes
// are intact: their CRC-32C is the one recorded when the server verified the upload, or, for a
// blob recorded before the server kept CRCs, their SHA-256 is the blob's ID (how blobs were named
// then); that every referenced blob is recorded; that every blob file is recorded (an
// unrecorded file is reported as a note, not a problem: it is what a server killed between
// storing a blob and recording it leaves behind, harmless and unreferenced; it is not deleted); that every record parses and matches its index row; and that every
// tree's folder summaries and bucket hashes recompute from the stored records to the head's state
// root. It returns the number of problems; err is for failures to run the check at all.
//
// Run it while no server uses dataDir: opening the blob store removes in-flight upload files.
func Fsck(ctx context.Context, dataDir string, w io.Writer) (problems int, err error) {
	return FsckIn(ctx, StoreConfig{DataDir: dataDir}, w)
}

// FsckIn is Fsck on the stores cfg names (as `coffer serve --db … --blobs …` would use them).
func FsckIn(ctx context.Context, cfg StoreConfig, w io.Writer) (problems int, err error) {
	if cfg.DB == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, metaFile)); err != nil {
			return 0, fmt.Errorf("server: fsck: no server data in %s: %w", cfg.DataDir, err)
		}
	}
	cfg.Cluster = false
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := OpenStores(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("server: fsck: %w", err)
	}
	defer st.Close()
	return FsckStores(ctx, st.Meta, st.Blobs, w)
}

// FsckStores runs the checks of Fsck on open stores.
func FsckStores(ctx context.Context, meta metastore.Store, blobs blobstore.Store, w io.Writer) (problems int, err error) {
	c := &checker{ctx: ctx, meta: meta, blobs: blobs, w: w}
	if err := c.run(); err != nil {
		return c.problems, fmt.Errorf("server: fsck: %w", err)
	}
	return c.problems, nil
}

type checker struct {
	ctx      context.Context
	meta     metastore.Store
	blobs    blobstore.Store
	w        io.Writer
	problems int
	orphans  int
	legacy   int // recorded blobs without a CRC-32C, checked by SHA-256 = ID
}

func (c *checker) problem(format string, args ...any) {
	c.problems++
	fmt.Fprintf(c.w, "problem: "+format+"\n", args...)
}

func (c *checker) run() error {
	recorded := map[coffer.BlobID]bool{}
	var infos []metastore.BlobInfo
	for b, err := range c.meta.AllBlobs(c.ctx) {
		if err != nil {
			return err
		}
		infos = append(infos, b)
		recorded[b.ID] = true
	}
	for _, b := range infos {
		if err := c.checkBlob(b); err != nil {
			return err
		}
	}
	referenced := 0
	for id, err := range c.meta.ReferencedBlobs(c.ctx) {
		if err != nil {
			return err
		}
		referenced++
		if !recorded[id] {
			c.problem("blob %v: referenced by a record but not recorded", id)
		}
	}
	files := 0
	err := c.blobs.List(c.ctx, func(id coffer.BlobID, size int64) error {
		files++
		if !recorded[id] {
			c.orphans++
			fmt.Fprintf(c.w, "note: blob %v: orphan file of %d bytes (not recorded, so unreferenced: a leftover of an interrupted upload; not deleted)\n", id, size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	trees, err := c.trees()
	if err != nil {
		return err
	}
	for _, t := range trees {
		if err := c.checkTree(t); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.w, "checked %d recorded blobs (%d without a recorded CRC-32C), %d references, %d blob files (%d orphans), %d trees: %d problems\n",
		len(infos), c.legacy, referenced, files, c.orphans, len(trees), c.problems)
	return nil
}

// checkBlob checks one recorded blob's bytes: present, recorded size, and CRC-32C equal to the
// recorded one (or, without a recorded CRC, SHA-256 equal to the ID).
func (c *checker) checkBlob(b metastore.BlobInfo) error {
	size, err := c.blobs.Stat(c.ctx, b.ID)
	if errors.Is(err, coffer.ErrNotFound) {
		c.problem("blob %v: recorded (%d bytes) but missing from the blob store", b.ID, b.Size)
		return nil
	}
	if err != nil {
		return err
	}
	if size != b.Size {
		c.problem("blob %v: recorded size %d, stored size %d", b.ID, b.Size, size)
	}
	rc, err := c.blobs.Get(c.ctx, b.ID, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	if b.HasCRC {
		h := crc32.New(blobstore.CRC32C)
		if _, err := io.Copy(h, rc); err != nil {
			return fmt.Errorf("blob %v: %w", b.ID, err)
		}
		if got := h.Sum32(); got != b.CRC32C {
			c.problem("blob %v: content does not match its recorded CRC-32C (corrupt): recorded %08x, stored bytes %08x", b.ID, b.CRC32C, got)
		}
		return nil
	}
	c.legacy++
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return fmt.Errorf("blob %v: %w", b.ID, err)
	}
	if coffer.BlobID(h.Sum(nil)) != b.ID {
		c.problem("blob %v: content does not hash to its ID (corrupt; recorded without a CRC-32C)", b.ID)
	}
	return nil
}

// trees returns every tree in the store.
func (c *checker) trees() ([]coffer.TreeID, error) {
	var out []coffer.TreeID
	for t, err := range c.meta.AllTrees(c.ctx) {
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// checkTree walks a tree from the zero folder, recomputes every folder summary, bucket hash and
// the state root, and compares them with the stored index and the head.
func (c *checker) checkTree(t coffer.TreeID) error {
	h, err := c.meta.Head(c.ctx, t)
	if err != nil {
		return err
	}
	head, err := format.ParseHead(h.Head)
	if err != nil {
		c.problem("tree %v: head does not parse: %v", t, err)
		return nil
	}
	if head.Tree != t || head.Version != h.Version {
		c.problem("tree %v: head names tree %v version %d, index says version %d", t, head.Tree, head.Version, h.Version)
	}
	computed := map[uint8][]format.FolderSummary{}
	visited := map[coffer.NodeID]bool{}
	queue := []coffer.NodeID{{}}
	var files []coffer.NodeID
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if visited[f] {
			c.problem("tree %v: folder %v reached twice (cycle)", t, f)
			continue
		}
		visited[f] = true
		var entries []format.Entry
		for n, err := range c.meta.Children(c.ctx, t, f) {
			if err != nil {
				return err
			}
			entries = append(entries, format.Entry{Node: n.Node, Hash: n.Hash})
			switch c.checkRecord(t, f, n) {
			case format.KindFolder:
				queue = append(queue, n.Node)
			case format.KindFile:
				files = append(files, n.Node)
			}
		}
		if len(entries) > 0 {
			b := format.BucketOf(f)
			computed[b] = append(computed[b], format.FolderSummary{Folder: f, Count: uint64(len(entries)), Root: format.FolderRoot(f, entries)})
		}
	}
	for _, n := range files {
		old, err := c.meta.Versions(c.ctx, t, n)
		if err != nil {
			return err
		}
		for i, raw := range old {
			if r, err := format.ParseRecord(raw); err != nil || r.Node != n {
				c.problem("tree %v: node %v: kept version %d does not parse or names another node", t, n, i)
			}
		}
	}
	stored, err := c.meta.Buckets(c.ctx, t)
	if err != nil {
		return err
	}
	var recomputed [256][32]byte
	for b := range 256 {
		bucket, err := c.meta.Bucket(c.ctx, t, uint8(b))
		if err != nil {
			return err
		}
		want := computed[uint8(b)]
		slices.SortFunc(want, func(x, y format.FolderSummary) int { return bytes.Compare(x.Folder[:], y.Folder[:]) })
		if !slices.Equal(toFormatSummaries(bucket), want) {
			c.problem("tree %v: bucket %d: stored folder summaries differ from the records", t, b)
		}
		recomputed[b] = [32]byte{}
		if len(want) > 0 {
			recomputed[b] = format.BucketHash(uint8(b), want)
		}
		if stored[b] != recomputed[b] {
			c.problem("tree %v: bucket %d: stored bucket hash differs from the records", t, b)
		}
	}
	if format.StateRoot(&recomputed) != head.StateRoot {
		c.problem("tree %v: state root recomputed from the records differs from the head's", t)
	}
	return nil
}

// checkRecord parses a live record and checks it against its index row; it returns the kind
// (0 when the record is broken).
func (c *checker) checkRecord(t coffer.TreeID, folder coffer.NodeID, n metastore.Node) format.Kind {
	r, err := format.ParseRecord(n.Record)
	if err != nil {
		c.problem("tree %v: node %v: record does not parse: %v", t, n.Node, err)
		return 0
	}
	if r.Node != n.Node || r.Parent != folder || n.Parent != folder || uint8(r.Kind) != n.Kind ||
		r.Version != n.Version || r.Hash() != n.Hash {
		c.problem("tree %v: node %v: record differs from its index row", t, n.Node)
		return 0
	}
	return r.Kind
}
