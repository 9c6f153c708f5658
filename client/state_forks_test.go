package client

import (
	"crypto/ed25519"
	"testing"
	"time"

	"coffer"
	"coffer/format"
)

// TestForkStateAcrossProcesses: two state stores on one state directory (two CLI processes) keep
// a recorded fork, and a resolution is not undone by the other process's older copy.
func TestForkStateAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	acct, tree := coffer.NewAccountID(), coffer.NewTreeID()
	_, key, _ := ed25519.GenerateKey(nil)
	head := func(v uint64, prev [32]byte) *format.Head {
		h := &format.Head{Tree: tree, Version: v, Prev: prev, Time: int64(v)}
		h.Sign(key)
		return h
	}
	h1 := head(1, [32]byte{})
	h2 := head(2, h1.Hash())
	h5 := head(5, [32]byte{5})
	p1, err := openState(dir, acct)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := openState(dir, acct)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p1.rememberHead(h5))
	t0 := time.Now()
	must(p1.recordFork(tree, "fork detail", t0))
	// The other process saves something else: the fork survives the merge.
	must(p2.rememberHead(h1))
	p3, err := openState(dir, acct)
	must(err)
	if fs, ok := p3.fork(tree); !ok || fs.Detail != "fork detail" {
		t.Fatalf("fork after another process saved: %+v %v", fs, ok)
	}
	// Resolution replaces the remembered head even by an older one.
	must(p3.resolveFork(h2, t0.Add(time.Second)))
	if _, ok := p3.fork(tree); ok {
		t.Fatal("fork still blocks after resolving")
	}
	if h, _ := p3.head(tree); h == nil || h.Version != 2 {
		t.Fatalf("head after resolving: %+v", h)
	}
	// A process that still holds the unresolved fork and the abandoned branch's head in memory
	// saves: the resolution and its head stand.
	must(p1.recordFork(coffer.NewTreeID(), "another tree", t0)) // any save
	p4, err := openState(dir, acct)
	must(err)
	if _, ok := p4.fork(tree); ok {
		t.Fatal("an older copy brought the resolved fork back")
	}
	if h, _ := p4.head(tree); h == nil || h.Hash() != h2.Hash() {
		t.Fatalf("an older copy replaced the resolved head: %+v", h)
	}
	// Later heads of the accepted history are remembered as usual by either process.
	h3 := head(3, h2.Hash())
	must(p1.rememberHead(h3))
	if h, _ := p1.head(tree); h == nil || h.Version != 3 {
		t.Fatalf("head after resolution in the other process: %+v", h)
	}
	// A fork detected after the resolution blocks again.
	must(p4.recordFork(tree, "again", t0.Add(2*time.Second)))
	p5, err := openState(dir, acct)
	must(err)
	if fs, ok := p5.fork(tree); !ok || fs.Detail != "again" {
		t.Fatalf("new fork after a resolution: %+v %v", fs, ok)
	}
}
