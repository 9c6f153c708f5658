package sqlite

import (
	"path/filepath"
	"testing"

	"coffer/internal/metastore/metastoretest"
)

func TestCopyTables(t *testing.T) {
	metastoretest.CopyTables(t, open(t, filepath.Join(t.TempDir(), "m.db")))
}

// TestCopyTablesCoverSchema: every table of the schema is either copied by admin migrate or
// deliberately left out, so a new table cannot be dropped silently by a migration.
func TestCopyTablesCoverSchema(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "m.db"))
	rows, err := s.r.QueryContext(t.Context(), `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	notCopied := map[string]bool{"sessions": true, "login_failures": true, "schema_version": true,
		"seen_heads": true} // keyed by session, like sessions: republished at the next exchange
	seen := map[string]bool{}
	for rows.Next() {
		var name string
		rows.Scan(&name)
		seen[name] = true
		if _, ok := copyTables[name]; !ok && !notCopied[name] {
			t.Errorf("table %s is neither in copyTables (copy.go) nor deliberately left out", name)
		}
	}
	for name := range copyTables {
		if !seen[name] {
			t.Errorf("copyTables names %s, which the schema does not have", name)
		}
	}
}
