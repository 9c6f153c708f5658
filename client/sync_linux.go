//go:build linux

package client

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// syncFiles makes the given files durable. On Linux one syncfs(2) per filesystem replaces a
// fsync per file (a download group usually lives on one filesystem).
func syncFiles(paths []string) error {
	dirs := map[string]bool{}
	var list []string
	for _, p := range paths {
		if dir := filepath.Dir(p); !dirs[dir] {
			dirs[dir] = true
			list = append(list, dir)
		}
	}
	return syncDirs(list)
}

// syncDirs makes renames and new entries in the given folders durable: one syncfs(2) per
// filesystem.
func syncDirs(dirs []string) error {
	done := map[uint64]bool{}
	for _, dir := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return err
		}
		if done[st.Dev] {
			continue
		}
		done[st.Dev] = true
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
