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
	// The previous files let the generator keep their HPKE ciphertexts (see format.Vectors).
	var prev []*format.Vector
	old, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	for _, p := range old {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		name := filepath.Base(p)
		v, err := format.ParseVector(name[:len(name)-len(".txt")], b)
		if err != nil {
			return err
		}
		prev = append(prev, v)
	}
	vs, err := format.Vectors(prev...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
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
