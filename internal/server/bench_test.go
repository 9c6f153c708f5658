package server

import (
	"testing"

	"coffer/format"
)

// BenchmarkCommit1000 measures one commit of 1,000 new files over HTTP (validation and store).
func BenchmarkCommit1000(b *testing.B) {
	e := newEnv(b)
	u := e.signup("alice")
	for b.Loop() {
		b.StopTimer()
		dir := u.folder(u.root, "d")
		recs := []*format.Record{dir}
		for range 999 {
			recs = append(recs, u.file(dir.Node, "f"))
		}
		req, _ := u.build(recs...)
		b.StartTimer()
		if st, ae, _ := u.post(req); st != 200 {
			b.Fatalf("%d %+v", st, ae)
		}
		b.StopTimer()
		u.accept(req)
		b.StartTimer()
	}
}

// BenchmarkListing10k measures listing a folder of 10,000 children.
func BenchmarkListing10k(b *testing.B) {
	e := newEnv(b)
	u := e.signup("alice")
	dir := u.folder(u.root, "d")
	recs := []*format.Record{dir}
	for range 10000 {
		recs = append(recs, u.file(dir.Node, "f"))
	}
	u.commit(recs...)
	for b.Loop() {
		if l := u.list(dir.Node); len(l.children) != 10000 {
			b.Fatal(len(l.children))
		}
	}
}
