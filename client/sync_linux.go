//go:build linux

package client

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFiles makes the given files durable. On Linux one syncfs(2) of their filesystem replaces
// a fsync per file (files of one download group live on one filesystem; the first decides).
func syncFiles(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	f, err := os.Open(paths[0])
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
