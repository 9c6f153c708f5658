package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"

	"coffer"
)

// Entry is a node in a folder's commitment.
type Entry struct {
	Node coffer.NodeID
	Hash [32]byte // record hash
}

// FolderSummary is one folder in the index.
type FolderSummary struct {
	Folder coffer.NodeID
	Count  uint64
	Root   [32]byte
}

// BucketOf is the index bucket of a folder: its first byte. Top-level nodes live in the zero
// folder, bucket 0.
func BucketOf(folder coffer.NodeID) uint8 { return folder[0] }

// FolderRoot commits to a folder's live children:
// SHA-256("coffer/v1 folder" || 0x00 || folder[16] || count u64 || (node[16] || hash[32])*).
// Entries must be sorted by Node and unique; it panics otherwise (a caller bug, see CheckEntries).
func FolderRoot(folder coffer.NodeID, entries []Entry) [32]byte {
	mustSorted("FolderRoot", entries)
	h := sha256.New()
	var buf [64]byte
	hdr := append(buf[:0], "coffer/v1 folder\x00"...)
	hdr = append(hdr, folder[:]...)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(entries)))
	h.Write(hdr)
	for i := range entries {
		h.Write(entries[i].Node[:])
		h.Write(entries[i].Hash[:])
	}
	return [32]byte(h.Sum(nil))
}

// BucketHash commits to the non-empty folders of one bucket:
// SHA-256("coffer/v1 bucket" || 0x00 || bucket u8 || n u64 || (folder[16] || count u64 || root[32])*),
// and is 32 zero bytes for a bucket without folders (so a store need not materialise the 256
// buckets of a new tree). folders must be sorted by Folder, unique, each with Count > 0 and
// BucketOf(Folder) == bucket; it panics otherwise.
func BucketHash(bucket uint8, folders []FolderSummary) [32]byte {
	if len(folders) == 0 {
		return [32]byte{}
	}
	h := sha256.New()
	var buf [64]byte
	hdr := append(buf[:0], "coffer/v1 bucket\x00"...)
	hdr = append(hdr, bucket)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(folders)))
	h.Write(hdr)
	for i := range folders {
		f := &folders[i]
		if f.Count == 0 || BucketOf(f.Folder) != bucket {
			panic("format: BucketHash: empty folder or folder of another bucket")
		}
		if i > 0 && bytes.Compare(folders[i-1].Folder[:], f.Folder[:]) >= 0 {
			panic("format: BucketHash: folders not sorted or not unique")
		}
		b := append(buf[:0], f.Folder[:]...)
		b = binary.BigEndian.AppendUint64(b, f.Count)
		b = append(b, f.Root[:]...)
		h.Write(b)
	}
	return [32]byte(h.Sum(nil))
}

// StateRoot commits to all 256 bucket hashes:
// SHA-256("coffer/v1 state" || 0x00 || bucket[0] || ... || bucket[255]).
func StateRoot(buckets *[256][32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("coffer/v1 state\x00"))
	for i := range buckets {
		h.Write(buckets[i][:])
	}
	return [32]byte(h.Sum(nil))
}

// EmptyBuckets returns the bucket hashes of an empty tree: BucketHash(b, nil), all zero.
func EmptyBuckets() *[256][32]byte { return new([256][32]byte) }

// OpsHash commits to the records of one commit:
// SHA-256("coffer/v1 ops" || 0x00 || n u64 || (node[16] || recordHash[32])*).
// ops must be sorted by Node and unique; it panics otherwise.
func OpsHash(ops []Entry) [32]byte {
	mustSorted("OpsHash", ops)
	h := sha256.New()
	var buf [32]byte
	hdr := append(buf[:0], "coffer/v1 ops\x00"...)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(ops)))
	h.Write(hdr)
	for i := range ops {
		h.Write(ops[i].Node[:])
		h.Write(ops[i].Hash[:])
	}
	return [32]byte(h.Sum(nil))
}

// CheckEntries reports whether entries are sorted by Node and unique, the precondition of
// FolderRoot and OpsHash; the error wraps coffer.ErrInvalid.
func CheckEntries(entries []Entry) error {
	for i := 1; i < len(entries); i++ {
		if bytes.Compare(entries[i-1].Node[:], entries[i].Node[:]) >= 0 {
			return invalidf("entries: node %s at %d not sorted or duplicate", entries[i].Node, i)
		}
	}
	return nil
}

func mustSorted(fn string, entries []Entry) {
	if err := CheckEntries(entries); err != nil {
		panic("format: " + fn + ": " + err.Error())
	}
}
