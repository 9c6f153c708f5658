package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestReproducesCommittedVectors runs the generator into a temporary directory and requires
// byte-identical output to format/testdata/vectors (no silent regeneration).
func TestReproducesCommittedVectors(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	committed := filepath.Join("..", "..", "testdata", "vectors")
	got, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	want, _ := filepath.Glob(filepath.Join(committed, "*.txt"))
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("generated %d files, %d committed", len(got), len(want))
	}
	for _, p := range got {
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(committed, filepath.Base(p)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: differs from the committed file (%v); run go run ./format/internal/vectorgen and review the diff", filepath.Base(p), err)
		}
	}
}
