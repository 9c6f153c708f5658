package sqlite

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// cpuTime returns the process's user+system CPU time. Benchmarks report it per operation as
// cpu-ms/op, which (unlike ns/op) does not grow when other processes load the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// benchTree creates an account whose tree has a root folder and returns the account, the root
// and the tree's version.
func benchTree(b *testing.B, s *Store) (metastore.Account, coffer.NodeID) {
	b.Helper()
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "bench", Tree: coffer.NewTreeID()}
	root := coffer.NewNodeID()
	first := metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h"),
		Records: []metastore.CommitRecord{{Node: metastore.Node{Node: root, Kind: 1, Version: 1, Record: []byte("root")}}}}
	if _, err := s.CreateAccount(b.Context(), a, "", first); err != nil {
		b.Fatal(err)
	}
	return a, root
}

// newRecords returns n new file records under parent, each with a ~300-byte record.
func newRecords(n int, parent coffer.NodeID) []metastore.CommitRecord {
	recs := make([]metastore.CommitRecord, n)
	body := make([]byte, 300)
	for i := range recs {
		id := coffer.NewNodeID()
		binary.BigEndian.PutUint64(body, uint64(i))
		rec := append([]byte(nil), body...)
		recs[i] = metastore.CommitRecord{Node: metastore.Node{Node: id, Parent: parent, Kind: kindFile, Version: 1,
			Hash: sha256.Sum256(rec), Record: rec}}
	}
	return recs
}

// BenchmarkChildren100k lists a folder of 100,000 children (target: well under 1 s).
func BenchmarkChildren100k(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "meta.db"))
	defer s.Close()
	a, root := benchTree(b, s)
	const total, per = 100_000, 10_000
	for v := uint64(1); v <= total/per; v++ {
		c := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: v, Version: v + 1, Head: []byte("h"),
			Records: newRecords(per, root)}
		if _, err := s.Commit(b.Context(), c); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := cpuTime()
	for b.Loop() {
		n := 0
		for _, err := range s.Children(b.Context(), a.Tree, root) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != total {
			b.Fatalf("%d children, want %d", n, total)
		}
	}
	reportCPU(b, cpu0)
}

// BenchmarkCommit1000 commits 1,000 new records at a time (target: under 50 ms).
func BenchmarkCommit1000(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "meta.db"))
	defer s.Close()
	a, root := benchTree(b, s)
	v := uint64(1)
	cpu0 := cpuTime()
	for b.Loop() {
		b.StopTimer()
		recs := newRecords(1000, root)
		b.StartTimer()
		c := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: v, Version: v + 1, Head: []byte("h"),
			Records: recs, Ops: []byte(fmt.Sprint(v))}
		if _, err := s.Commit(b.Context(), c); err != nil {
			b.Fatal(err)
		}
		v++
	}
	reportCPU(b, cpu0)
}

// BenchmarkCommitReplace1000 replaces 1,000 file records that each reference a blob and keep history.
func BenchmarkCommitReplace1000(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "meta.db"))
	defer s.Close()
	a, root := benchTree(b, s)
	recs := newRecords(1000, root)
	blob := coffer.BlobID(sha256.Sum256([]byte("blob")))
	if err := s.AddBlob(b.Context(), metastore.BlobInfo{ID: blob, Owner: a.ID, Size: 1, Created: time.Now()}); err != nil {
		b.Fatal(err)
	}
	v := uint64(1)
	cpu0 := cpuTime()
	for b.Loop() {
		for i := range recs {
			recs[i].Node.Version = v
			recs[i].Blobs = []coffer.BlobID{blob}
		}
		c := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: v, Version: v + 1, Head: []byte("h"),
			Records: recs, KeepVersions: 10}
		if _, err := s.Commit(b.Context(), c); err != nil {
			b.Fatal(err)
		}
		v++
	}
	reportCPU(b, cpu0)
}

// BenchmarkCommitFolder50 commits what a folder put of 50 small files commits: a new folder and
// 50 new file records that reference one packed blob (bench/load -small-batch 50).
func BenchmarkCommitFolder50(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "meta.db"))
	defer s.Close()
	a, root := benchTree(b, s)
	v := uint64(1)
	cpu0 := cpuTime()
	for b.Loop() {
		b.StopTimer()
		blob := coffer.BlobID(sha256.Sum256(fmt.Append(nil, "blob", v)))
		if err := s.AddBlob(b.Context(), metastore.BlobInfo{ID: blob, Owner: a.ID, Size: 1, Created: time.Now()}); err != nil {
			b.Fatal(err)
		}
		dir := newRecords(1, root)[0]
		dir.Node.Kind = 1
		recs := append([]metastore.CommitRecord{dir}, newRecords(50, dir.Node.Node)...)
		for i := range recs[1:] {
			recs[1+i].Blobs = []coffer.BlobID{blob}
		}
		b.StartTimer()
		c := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: v, Version: v + 1, Head: []byte("h"),
			Records: recs, Ops: []byte(fmt.Sprint(v)), KeepVersions: 10,
			Folders: []metastore.FolderSummary{{Folder: root, Count: v, Root: [32]byte{1}}, {Folder: dir.Node.Node, Count: 50, Root: [32]byte{2}}},
			Buckets: map[uint8][32]byte{root[0]: {3}, dir.Node.Node[0]: {4}}}
		if _, err := s.CommitShared(b.Context(), c); err != nil {
			b.Fatal(err)
		}
		v++
	}
	reportCPU(b, cpu0)
}
