package sqlite

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

const childDBEnv = "COFFER_SQLITE_KILL_TEST_DB"

// TestKillNineKeepsAcknowledgedCommits runs commits in a child process, kills it with SIGKILL
// mid-stream, and checks that every commit the child saw acknowledged is in the database.
func TestKillNineKeepsAcknowledgedCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childDBEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acct coffer.AccountID
	var tree coffer.TreeID
	nodes := map[uint64]coffer.NodeID{}
	var acked uint64
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() }) // a hung child
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	for acked < 40 && sc.Scan() {
		var v uint64
		var a, tr, n string
		if _, err := fmt.Sscan(sc.Text(), &a, &tr, &v, &n); err != nil {
			continue // test framework output
		}
		acct, _ = coffer.ParseAccountID(a)
		tree, _ = coffer.ParseTreeID(tr)
		nodes[v], _ = coffer.ParseNodeID(n)
		acked = v
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if acked < 40 {
		t.Fatalf("child acknowledged only %d commits", acked)
	}

	s := open(t, path)
	defer s.Close()
	h, err := s.Head(t.Context(), tree)
	if err != nil {
		t.Fatalf("Head after kill: %v", err)
	}
	if h.Version < acked {
		t.Fatalf("head is at v%d after kill, but v%d was acknowledged", h.Version, acked)
	}
	for v, n := range nodes {
		if _, err := s.Node(t.Context(), tree, n); err != nil {
			t.Fatalf("node of acknowledged commit v%d lost: %v", v, err)
		}
	}
	feed, err := s.Changes(t.Context(), acct, 0, 100000)
	if err != nil || uint64(len(feed)) != h.Version {
		t.Fatalf("feed has %d entries for head v%d (%v)", len(feed), h.Version, err)
	}
}

// TestKillChild is the child of TestKillNineKeepsAcknowledgedCommits: it commits until killed,
// printing "account tree version node" after each acknowledged commit.
func TestKillChild(t *testing.T) {
	path := os.Getenv(childDBEnv)
	if path == "" {
		t.Skip("runs only as the child of TestKillNineKeepsAcknowledgedCommits")
	}
	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := metastore.Account{ID: coffer.NewAccountID(), Username: "killed", Tree: coffer.NewTreeID()}
	root := coffer.NewNodeID()
	first := metastore.Commit{Tree: a.Tree, Owner: a.ID, Version: 1, Head: []byte("h1"),
		Records: []metastore.CommitRecord{{Node: metastore.Node{Node: root, Kind: 1, Version: 1, Record: []byte("root")}}}}
	if _, err := s.CreateAccount(t.Context(), a, "", first); err != nil {
		t.Fatal(err)
	}
	fmt.Println(a.ID, a.Tree, 1, root)
	for v := uint64(1); ; v++ {
		n := coffer.NewNodeID()
		rec := []byte("record " + strconv.FormatUint(v, 10))
		c := metastore.Commit{Tree: a.Tree, Owner: a.ID, BaseVersion: v, Version: v + 1, Head: rec,
			Records: []metastore.CommitRecord{{Node: metastore.Node{Node: n, Parent: root, Kind: kindFile, Version: 1,
				Hash: sha256.Sum256(rec), Record: rec}}}}
		if _, err := s.Commit(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		fmt.Println(a.ID, a.Tree, v+1, n)
	}
}
