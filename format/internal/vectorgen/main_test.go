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
	committed := filepath.Join("..", "..", "testdata", "vectors")
	// Start from the committed files: the generator keeps their HPKE ciphertexts.
	prev, _ := filepath.Glob(filepath.Join(committed, "*.txt"))
	for _, p := range prev {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
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
