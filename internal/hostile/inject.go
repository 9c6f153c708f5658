package hostile

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore"
	"coffer/tree"
)

// ForgeFile builds a commit adding a new empty file named name to folder, signed (record and
// head) by signer, on top of the head of listing, the raw listing of folder
// (GET /v1/trees/{tree}/folders/{folder}); folderWrap wraps its children's node keys. Its hashes
// are consistent (folder root, bucket, state root). It returns the request a client would post,
// and the store commit InjectFile writes.
func ForgeFile(listing []byte, folder coffer.NodeID, folderWrap format.WrapKey, signer ed25519.PrivateKey,
	name string) (*api.CommitRequest, *metastore.Commit, error) {
	src, head, err := parseListingSource(listing, folder)
	if err != nil {
		return nil, nil, err
	}
	ck := format.NewContentKey()
	body := &format.Body{Name: name, MTime: time.Now().UnixNano(), Mode: 0o644, Content: &format.Content{
		Key: ck, Commitment: ck.Commitment(), Size: 0, ChunkSize: format.DefaultChunkSize, Hash: sha256.Sum256(nil)}}
	id := coffer.NewNodeID()
	rec, err := format.SealRecord(format.KindFile, id, folder, 1, [32]byte{}, format.NewNodeKey(), folderWrap, body, signer)
	if err != nil {
		return nil, nil, err
	}
	raw := rec.Marshal()
	hash := sha256.Sum256(raw)
	res, err := tree.Apply(src, []tree.Op{{Node: id, Parent: folder, Hash: hash}})
	if err != nil {
		return nil, nil, err
	}
	h := &format.Head{Tree: head.Tree, Version: head.Version + 1, Prev: head.Hash(), StateRoot: res.StateRoot,
		OpsHash: res.OpsHash, Time: time.Now().UnixMilli()}
	h.Sign(signer)
	req := &api.CommitRequest{BaseVersion: head.Version, Head: h.Marshal(), Records: []api.CommitRecord{{Record: raw}}}
	c := &metastore.Commit{Tree: head.Tree, BaseVersion: head.Version, Version: h.Version, Head: req.Head,
		Buckets: res.Buckets, KeepVersions: 10,
		Records: []metastore.CommitRecord{{Node: metastore.Node{Node: id, Parent: folder, Kind: uint8(format.KindFile),
			Version: 1, Hash: hash, Record: raw}}}}
	for _, s := range res.Folders {
		c.Folders = append(c.Folders, metastore.FolderSummary{Folder: s.Folder, Count: s.Count, Root: s.Root})
	}
	return req, c, nil
}

// InjectFile writes the commit of ForgeFile straight into a metadata store, past every check the
// server makes (a compromised server or database), for the tree's owner account. The stored
// state stays consistent, so an honest server serves it as is: only the reader's authority check
// can refuse it. Tests use it (the shared-folder scenarios and the CLI tests).
func InjectFile(ctx context.Context, store metastore.Trees, owner coffer.AccountID, listing []byte, folder coffer.NodeID,
	folderWrap format.WrapKey, signer ed25519.PrivateKey, name string) error {
	_, c, err := ForgeFile(listing, folder, folderWrap, signer, name)
	if err != nil {
		return err
	}
	c.Owner = owner
	if _, err := store.Commit(ctx, *c); err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	return nil
}

// listingSource is tree.Source over one folder's listing.
type listingSource struct {
	folder   coffer.NodeID
	children []format.Entry
	bucket   []format.FolderSummary
	buckets  *[256][32]byte
}

func (s *listingSource) Children(f coffer.NodeID) ([]format.Entry, error) {
	if f != s.folder {
		return nil, fmt.Errorf("inject: folder %v not in the listing", f)
	}
	return s.children, nil
}

func (s *listingSource) Bucket(b uint8) ([]format.FolderSummary, error) {
	if b != format.BucketOf(s.folder) {
		return nil, fmt.Errorf("inject: bucket %d not in the listing", b)
	}
	return s.bucket, nil
}

func (s *listingSource) Buckets() (*[256][32]byte, error) { return s.buckets, nil }

// parseListingSource reads a listing's frames (head, buckets, bucket, records, end).
func parseListingSource(b []byte, folder coffer.NodeID) (*listingSource, *format.Head, error) {
	s := &listingSource{folder: folder, buckets: new([256][32]byte)}
	var head *format.Head
	for i := 0; len(b) >= 5; i++ {
		typ, n := b[0], binary.BigEndian.Uint32(b[1:5])
		if uint64(len(b)-5) < uint64(n) {
			return nil, nil, fmt.Errorf("inject: truncated listing")
		}
		p := b[5 : 5+n]
		b = b[5+n:]
		switch typ {
		case api.FrameHead:
			h, err := format.ParseHead(p)
			if err != nil {
				return nil, nil, err
			}
			head = h
		case api.FrameBuckets:
			for j := range s.buckets {
				copy(s.buckets[j][:], p[32*j:])
			}
		case api.FrameBucket:
			for ; len(p) >= 56; p = p[56:] {
				var fs format.FolderSummary
				copy(fs.Folder[:], p[:16])
				fs.Count = binary.BigEndian.Uint64(p[16:24])
				copy(fs.Root[:], p[24:56])
				s.bucket = append(s.bucket, fs)
			}
		case api.FrameRecord:
			r, err := format.ParseRecord(p)
			if err != nil {
				return nil, nil, err
			}
			s.children = append(s.children, format.Entry{Node: r.Node, Hash: sha256.Sum256(p)})
		}
	}
	if head == nil {
		return nil, nil, fmt.Errorf("inject: no head in the listing")
	}
	return s, head, nil
}
