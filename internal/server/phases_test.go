package server

import (
	"net/http/httptest"
	"strings"
	"testing"

	"coffer"
)

// TestCommitPhases: with Config.CommitPhases a successful commit is counted with its records and
// its time split into the named phases; a refused commit and other requests are not counted;
// reset starts a new sample. Without it the report is refused.
func TestCommitPhases(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CommitPhases = true })
	u := e.signup("pia")
	f := u.folder(coffer.NodeID{}, "docs")
	u.commit(f, u.file(f.Node, "a"), u.file(f.Node, "b"))
	stale, _ := u.build(u.file(f.Node, "c"))
	stale.BaseVersion--
	if st, _, _ := u.post(stale); st == 200 {
		t.Fatal("a commit on a stale base was accepted")
	}
	report := func(query string) string {
		rec := httptest.NewRecorder()
		e.srv.CommitPhasesHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/commit-phases"+query, nil))
		if rec.Code != 200 {
			t.Fatalf("report: HTTP %d %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	got := report("?reset=1")
	if !strings.Contains(got, "commits 1 (not sampled: 0), records per commit 3.0") {
		t.Fatalf("report after one commit of 3 records:\n%s", got)
	}
	for _, name := range append(phaseNames[:], "total") {
		if !strings.Contains(got, "\n"+name+" ") {
			t.Fatalf("report lacks phase %q:\n%s", name, got)
		}
	}
	if got := report(""); !strings.Contains(got, "commits 0 ") {
		t.Fatalf("report after reset:\n%s", got)
	}

	off := newEnv(t)
	rec := httptest.NewRecorder()
	off.srv.CommitPhasesHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/commit-phases", nil))
	if rec.Code != 404 {
		t.Fatalf("report with phases off: HTTP %d; want 404", rec.Code)
	}
}
