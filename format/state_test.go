package format

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"coffer"
)

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: did not panic", name)
		}
	}()
	f()
}

func TestStateHashes(t *testing.T) {
	folder := coffer.NodeID(id16(0x10))
	e := []Entry{{Node: coffer.NodeID(id16(1)), Hash: id32(1)}, {Node: coffer.NodeID(id16(2)), Hash: id32(2)}}
	// Spelled out once by hand.
	buf := append([]byte("coffer/v1 folder\x00"), folder[:]...)
	buf = binary.BigEndian.AppendUint64(buf, 2)
	for _, x := range e {
		buf = append(buf, x.Node[:]...)
		buf = append(buf, x.Hash[:]...)
	}
	root := FolderRoot(folder, e)
	if root != sha256.Sum256(buf) {
		t.Fatal("FolderRoot layout")
	}
	// Every change of input changes the root.
	e2 := []Entry{e[0], {Node: e[1].Node, Hash: id32(3)}}
	if FolderRoot(folder, e2) == root || FolderRoot(coffer.NodeID(id16(0x11)), e) == root || FolderRoot(folder, e[:1]) == root {
		t.Fatal("root does not commit to its input")
	}
	if FolderRoot(folder, nil) == FolderRoot(coffer.NodeID{}, nil) {
		t.Fatal("empty roots of different folders collide")
	}
	mustPanic(t, "unsorted", func() { FolderRoot(folder, []Entry{e[1], e[0]}) })
	mustPanic(t, "duplicate", func() { FolderRoot(folder, []Entry{e[0], e[0]}) })
	mustPanic(t, "ops unsorted", func() { OpsHash([]Entry{e[1], e[0]}) })

	fs := []FolderSummary{{Folder: coffer.NodeID(id16(0x10)), Count: 2, Root: root}}
	f2 := coffer.NodeID(id16(0x10))
	f2[15] = 0x11
	fs = append(fs, FolderSummary{Folder: f2, Count: 1, Root: id32(9)})
	bh := BucketHash(0x10, fs)
	bbuf := append([]byte("coffer/v1 bucket\x00\x10"), binary.BigEndian.AppendUint64(nil, 2)...)
	for _, f := range fs {
		bbuf = append(bbuf, f.Folder[:]...)
		bbuf = binary.BigEndian.AppendUint64(bbuf, f.Count)
		bbuf = append(bbuf, f.Root[:]...)
	}
	if bh != sha256.Sum256(bbuf) {
		t.Fatal("BucketHash layout")
	}
	mustPanic(t, "wrong bucket", func() { BucketHash(0x11, fs) })
	mustPanic(t, "zero count", func() { BucketHash(0x10, []FolderSummary{{Folder: fs[0].Folder}}) })
	mustPanic(t, "unsorted folders", func() { BucketHash(0x10, []FolderSummary{fs[1], fs[0]}) })

	empty := EmptyBuckets()
	if empty[0] != ([32]byte{}) || empty[7] != BucketHash(7, nil) || BucketHash(7, nil) != ([32]byte{}) {
		t.Fatal("EmptyBuckets")
	}
	sr := StateRoot(empty)
	sbuf := []byte("coffer/v1 state\x00")
	for _, b := range empty {
		sbuf = append(sbuf, b[:]...)
	}
	if sr != sha256.Sum256(sbuf) {
		t.Fatal("StateRoot layout")
	}
	b2 := *empty
	b2[0x10] = bh
	if StateRoot(&b2) == sr {
		t.Fatal("state root does not commit to buckets")
	}
	obuf := append([]byte("coffer/v1 ops\x00"), binary.BigEndian.AppendUint64(nil, 2)...)
	for _, x := range e {
		obuf = append(obuf, x.Node[:]...)
		obuf = append(obuf, x.Hash[:]...)
	}
	if OpsHash(e) != sha256.Sum256(obuf) || OpsHash(nil) == OpsHash(e) {
		t.Fatal("OpsHash layout")
	}
	if err := CheckEntries([]Entry{e[1], e[0]}); err == nil {
		t.Fatal("CheckEntries accepted unsorted")
	}
	if BucketOf(coffer.NodeID{}) != 0 {
		t.Fatal("zero folder not in bucket 0")
	}
}
