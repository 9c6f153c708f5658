// Command vectorgen writes format/testdata/vectors/*.txt (doc/FORMAT.md §14).
//
// Usage, from the module root: go run ./format/internal/vectorgen [-dir format/testdata/vectors]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"coffer/format"
)

func main() {
	dir := flag.String("dir", filepath.Join("format", "testdata", "vectors"), "output directory")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "vectorgen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	vs, err := format.Vectors()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	keep := map[string]bool{}
	for _, v := range vs {
		p := filepath.Join(dir, v.Name+".txt")
		keep[p] = true
		if err := os.WriteFile(p, v.Encode(), 0o644); err != nil {
			return err
		}
	}
	for _, p := range old {
		if !keep[p] {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	fmt.Printf("wrote %d vectors to %s\n", len(vs), dir)
	return nil
}
