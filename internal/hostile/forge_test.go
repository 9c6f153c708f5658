package hostile

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"sort"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/testenv"
)

// forgeLevel is how hard a forged listing tries to look consistent.
type forgeLevel int

const (
	// forgeNaive only changes the records.
	forgeNaive forgeLevel = iota
	// forgeHashes also recomputes the folder root, the bucket and the bucket hash (the state
	// root then differs from the signed head's).
	forgeHashes
	// forgeResign also rewrites the head's state root and signs it with the attacker's key.
	forgeResign
)

// forge rebuilds a listing of folder with the given record frames at level lvl.
func forge(t testing.TB, fs []frame, folder coffer.NodeID, recs [][]byte, lvl forgeLevel, attacker ed25519.PrivateKey) []frame {
	t.Helper()
	head, buckets, bucket := fs[0], fs[1], fs[2]
	out := []frame{head, buckets, bucket}
	type ent struct {
		e   format.Entry
		raw []byte
	}
	var es []ent
	for _, r := range recs {
		var id coffer.NodeID
		if rec, err := format.ParseRecord(r); err == nil {
			id = rec.Node
		} else if len(r) > 22 {
			copy(id[:], r[6:22])
		}
		es = append(es, ent{format.Entry{Node: id, Hash: sha256.Sum256(r)}, r})
	}
	if lvl >= forgeHashes {
		sort.SliceStable(es, func(i, j int) bool { return bytes.Compare(es[i].e.Node[:], es[j].e.Node[:]) < 0 })
	}
	for _, e := range es {
		out = append(out, frame{api.FrameRecord, e.raw})
	}
	out = append(out, frame{api.FrameEnd, nil})
	if lvl == forgeNaive {
		return out
	}
	entries := make([]format.Entry, len(es))
	for i := range es {
		entries[i] = es[i].e
	}
	// The folder's summary in its bucket.
	var sums []format.FolderSummary
	for b := bucket.b; len(b) >= 56; b = b[56:] {
		var s format.FolderSummary
		copy(s.Folder[:], b[:16])
		s.Count = binary.BigEndian.Uint64(b[16:24])
		copy(s.Root[:], b[24:56])
		if s.Folder != folder {
			sums = append(sums, s)
		}
	}
	if len(entries) > 0 {
		func() {
			defer func() { recover() }() // unsorted or duplicate entries: keep the old summary
			sums = append(sums, format.FolderSummary{Folder: folder, Count: uint64(len(entries)), Root: format.FolderRoot(folder, entries)})
		}()
	}
	sort.Slice(sums, func(i, j int) bool { return bytes.Compare(sums[i].Folder[:], sums[j].Folder[:]) < 0 })
	var nb []byte
	for _, s := range sums {
		nb = append(nb, s.Folder[:]...)
		nb = binary.BigEndian.AppendUint64(nb, s.Count)
		nb = append(nb, s.Root[:]...)
	}
	out[2] = frame{api.FrameBucket, nb}
	var all [256][32]byte
	for i := range all {
		copy(all[i][:], buckets.b[32*i:])
	}
	bh := [32]byte{}
	if len(sums) > 0 {
		bh = format.BucketHash(format.BucketOf(folder), sums)
	}
	all[format.BucketOf(folder)] = bh
	var ab []byte
	for i := range all {
		ab = append(ab, all[i][:]...)
	}
	out[1] = frame{api.FrameBuckets, ab}
	if lvl == forgeResign {
		h, err := format.ParseHead(head.b)
		if err != nil {
			t.Fatal(err)
		}
		h.StateRoot = format.StateRoot(&all)
		h.Sign(attacker)
		out[0] = frame{api.FrameHead, h.Marshal()}
	}
	return out
}

// listingHook rewrites the listing of one folder (hex node ID) with edit(frames, folder).
func listingHook(folderHex string, edit func(fs []frame, folder coffer.NodeID) []frame) testenv.Hook {
	return func(req *http.Request, resp *http.Response) error {
		if !isListing(req, resp) || folderOf(req) != folderHex {
			return nil
		}
		b, _ := testenv.ReadBody(resp)
		fs, ok := splitFrames(b)
		if !ok || len(fs) < 4 {
			return nil
		}
		id, _ := coffer.ParseNodeID(folderHex)
		testenv.ReplaceBody(resp, joinFrames(edit(fs, id)))
		return nil
	}
}

// recordsOf returns the record payloads of a listing.
func recordsOf(fs []frame) [][]byte {
	var out [][]byte
	for _, f := range fs {
		if f.typ == api.FrameRecord {
			out = append(out, bytes.Clone(f.b))
		}
	}
	return out
}
