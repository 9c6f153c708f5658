//go:build !linux

package client

import "os"

// syncFiles makes the given files durable, one fsync each.
func syncFiles(paths []string) error {
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncDirs makes renames and new entries in the given folders durable, one fsync each where
// the system can sync a folder (Windows cannot: its renames are journaled by NTFS).
func syncDirs(dirs []string) error {
	for _, dir := range dirs {
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		f.Sync() // best effort: not every system syncs a folder handle
		f.Close()
	}
	return nil
}
