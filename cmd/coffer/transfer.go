package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"coffer"
	"coffer/client"
)

// errExistsNotDir: several sources need a folder destination, and it is a file.
var errExistsNotDir = fmt.Errorf("destination is a file: %w", coffer.ErrExist)

func (a *app) putCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "put LOCAL... REMOTE",
		Short: "Upload files and folders",
		Long: `Upload local files and folders (recursively) with cp semantics: if REMOTE is an existing folder,
each LOCAL goes inside it; otherwise the single LOCAL is written as REMOTE. An existing remote file is
an error unless --force (which writes a new version; older ones stay in 'coffer versions').

Interrupted uploads resume: re-run the same command. Files already uploaded with the same size and
modification time are skipped; finished parts of a big file are not sent again. Symbolic links are
skipped.`,
		Example: "  coffer put report.pdf /docs/\n  coffer put ~/Photos /backup\n  coffer put --force notes.txt /notes.txt",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			locals, remoteArg := args[:len(args)-1], args[len(args)-1]
			remote, err := remotePath(remoteArg)
			if err != nil {
				return err
			}
			var total int64
			var files int
			for _, l := range locals {
				if !a.progressEnabled() {
					if _, err := os.Lstat(l); err != nil {
						return err // *fs.PathError naming l; ErrNotExist -> exit 4
					}
					continue
				}
				n, k, err := localTotal(l)
				if err != nil {
					return err
				}
				total += n
				files += k
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			prog := a.newProgress(total, files)
			res, err := c.Upload(cmd.Context(), locals, remote, client.TransferOptions{Progress: prog.client(), Overwrite: force})
			prog.finish(err)
			for _, w := range res.Warnings {
				a.info("coffer: put: warning: %s", w)
			}
			if err != nil {
				return err
			}
			a.info("Uploaded %s.", summary(res))
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "overwrite existing remote files (as a new version)")
	return c
}

func (a *app) getCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "get REMOTE... LOCAL",
		Short: "Download files and folders",
		Long: `Download remote files and folders (recursively) with cp semantics: if LOCAL is an existing folder,
each REMOTE goes inside it; otherwise the single REMOTE is written as LOCAL. An existing local file is
an error unless --force (which replaces it).

Every byte is verified before it appears under its final name: a file is written to a temporary
file beside it and renamed only when complete and verified. Interrupted downloads resume: re-run
the same command.`,
		Example: "  coffer get /docs/report.pdf .\n  coffer get /photos ~/restore\n  coffer get --force /notes.txt notes.txt",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			remotes, err := remotePaths(args[:len(args)-1])
			if err != nil {
				return err
			}
			local := args[len(args)-1]
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			var total int64
			var files int
			if a.progressEnabled() {
				if total, files, err = walkTotal(cmd.Context(), c, remotes); err != nil {
					return err
				}
			}
			prog := a.newProgress(total, files)
			res, err := c.Download(cmd.Context(), remotes, local, client.TransferOptions{Progress: prog.client(), Overwrite: force})
			prog.finish(err)
			if err != nil {
				return err
			}
			a.info("Downloaded %s.", summary(res))
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "replace existing local files")
	return c
}

// localTotal checks that a local source exists and sums its regular files' sizes.
func localTotal(p string) (int64, int, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, 0, err // *fs.PathError naming p; ErrNotExist -> exit 4
	}
	if !fi.IsDir() {
		if fi.Mode().IsRegular() {
			return fi.Size(), 1, nil
		}
		return 0, 0, nil
	}
	var total int64
	var files int
	err = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
			files++
		}
		return nil
	})
	return total, files, err
}

// summary renders a TransferResult for humans.
func summary(r client.TransferResult) string {
	s := plural(r.Files, "file") + ", " + plural(r.Folders, "folder") + ", " + humanSize(r.Bytes)
	if r.Skipped > 0 {
		s += fmt.Sprintf(" (%d unchanged, skipped)", r.Skipped)
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
