package main

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"coffer"
	"coffer/client"
)

func (a *app) trashCmd() *cobra.Command {
	var asJSON bool
	var shared string
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List the trash",
		Example: "  coffer trash ls\n  coffer trash ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			var es []*client.Entry
			if shared != "" {
				es, err = c.TrashIn(cmd.Context(), shared)
			} else {
				es, err = c.Trash(cmd.Context())
			}
			if err != nil {
				return err
			}
			if asJSON {
				return a.printEntriesJSON(es)
			}
			t := newTable(a.stdout)
			for _, e := range es {
				t.row(displayName(e), sizeColumn(e), humanTime(e.MTime), "from "+e.TrashOrigin, e.ID.String())
			}
			return t.flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	restore := &cobra.Command{
		Use:   "restore NAME [DST]",
		Short: "Restore a trashed file or folder",
		Long: `Move a trashed file or folder back where it came from, or to DST. NAME is its name as shown
by 'coffer trash ls' (use the ID shown there when several trashed entries share a name).`,
		Example: "  coffer trash restore report.pdf\n  coffer trash restore report.pdf /recovered/",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst := ""
			if len(args) == 2 {
				p, err := remotePath(args[1])
				if err != nil {
					return err
				}
				dst = p
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			if shared != "" {
				return c.RestoreTrashIn(cmd.Context(), shared, args[0], dst)
			}
			return c.RestoreTrash(cmd.Context(), args[0], dst)
		},
	}
	empty := &cobra.Command{
		Use:     "empty",
		Short:   "Delete everything in the trash for good",
		Example: "  coffer trash empty",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			var n int
			if shared != "" {
				n, err = c.EmptyTrashIn(cmd.Context(), shared)
			} else {
				n, err = c.EmptyTrash(cmd.Context())
			}
			if err != nil {
				return err
			}
			a.info("Deleted %s for good.", plural(n, "item"))
			return nil
		},
	}
	c := &cobra.Command{
		Use:   "trash",
		Short: "List, restore or empty the trash",
		Long: `List, restore or empty the trash. A shared folder has a trash of its own (what its members
removed there): select it with --shared PATH (any path in the shared folder).`,
		Example: "  coffer trash ls\n  coffer trash restore NAME [DST]\n  coffer trash empty\n  coffer trash ls --shared /projects",
		Args:    cobra.NoArgs,
		RunE:    groupHelp,
	}
	c.PersistentFlags().StringVar(&shared, "shared", "", "the trash of the shared folder holding this path")
	c.AddCommand(ls, restore, empty)
	return c
}

// versionJSON is one version in `versions ls --json`.
type versionJSON struct {
	Version uint64    `json:"version"`
	Size    int64     `json:"size"`
	MTime   time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"`
	Current bool      `json:"current"`
}

func (a *app) versionsCmd() *cobra.Command {
	var asJSON bool
	ls := &cobra.Command{
		Use:     "ls PATH",
		Short:   "List a file's kept versions, newest first",
		Example: "  coffer versions ls /notes.txt",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := a.pathSession(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			vs, err := c.Versions(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]versionJSON, 0, len(vs))
				for _, v := range vs {
					out = append(out, versionJSON{Version: v.Version, Size: v.Size, MTime: v.MTime.UTC(),
						SHA256: hex.EncodeToString(v.Hash[:]), Current: v.Current})
				}
				return a.printJSON(out)
			}
			t := newTable(a.stdout)
			t.row("VERSION", "SIZE", "MODIFIED", "SHA-256", "")
			for _, v := range vs {
				cur := ""
				if v.Current {
					cur = "current"
				}
				t.row(strconv.FormatUint(v.Version, 10), strconv.FormatInt(v.Size, 10), humanTime(v.MTime),
					hex.EncodeToString(v.Hash[:8]), cur)
			}
			return t.flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	restore := &cobra.Command{
		Use:     "restore PATH VERSION",
		Short:   "Make an older version current again (as a new version)",
		Example: "  coffer versions restore /notes.txt 3",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := remotePath(args[0])
			if err != nil {
				return err
			}
			v, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil || v == 0 {
				return usagef("VERSION %q: want a version number from 'coffer versions ls'", args[1])
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			return c.RestoreVersion(cmd.Context(), p, v)
		},
	}
	c := &cobra.Command{
		Use:     "versions",
		Short:   "List or restore a file's older versions",
		Example: "  coffer versions ls /notes.txt\n  coffer versions restore /notes.txt 3",
		Args:    cobra.NoArgs,
		RunE:    groupHelp,
	}
	c.AddCommand(ls, restore)
	return c
}

func (a *app) duCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "du [PATH]",
		Short:   "Sum the sizes of the files below a path",
		Long:    "Sum the plaintext sizes of the files below PATH (default /), walking the verified tree.",
		Example: "  coffer du\n  coffer du /photos\n  coffer du --json /photos",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := optionalPath(args)
			if err != nil {
				return err
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			var bytes int64
			var files, folders, mounts int
			if err := c.Walk(cmd.Context(), p, func(e *client.Entry) error {
				if e.IsDir {
					if e.Path != p {
						folders++
					}
					if e.Shared != (coffer.TreeID{}) && e.Path != p {
						mounts++
					}
				} else {
					files++
					bytes += e.Size
				}
				return nil
			}); err != nil {
				return err
			}
			// Quota attribution: content in a shared folder counts against its owner.
			sh, err := c.ShareOf(cmd.Context(), p)
			if err != nil {
				return err
			}
			owner := c.Whoami().Username
			if sh != nil && sh.Owner != "" {
				owner = sh.Owner
			}
			if asJSON {
				return a.printJSON(map[string]any{"path": p, "bytes": bytes, "files": files, "folders": folders,
					"quota_of": owner, "shared_folders": mounts})
			}
			fmt.Fprintf(a.stdout, "%s\t%d bytes, %s, %s\t%s\n", humanSize(bytes), bytes, plural(files, "file"), plural(folders, "folder"), p)
			if sh != nil {
				a.info("%s is in the shared folder %s: its content counts against %s's quota.", p, sh.Mount, owner)
			}
			if mounts > 0 {
				a.info("Includes %s below %s: their content counts against their owners' quotas.", plural(mounts, "shared folder"), p)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (a *app) quotaCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "quota",
		Short:   "Show the server storage used and the quota",
		Long:    "Show the encrypted storage the account uses on the server (all kept versions included) and its quota.",
		Example: "  coffer quota\n  coffer quota --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			u, err := c.Usage(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(map[string]int64{"used": u.Used, "quota": u.Quota, "blobs": u.Blobs})
			}
			if c.HasShares() {
				defer a.info("Content of the shared folders you own counts here, whoever uploaded it; folders shared with you count against their owners.")
			}
			if u.Quota <= 0 {
				fmt.Fprintf(a.stdout, "used %s (%d bytes in %d blobs), no quota\n", humanSize(u.Used), u.Used, u.Blobs)
				return nil
			}
			fmt.Fprintf(a.stdout, "used %s of %s (%.1f%%; %d bytes in %d blobs)\n", humanSize(u.Used), humanSize(u.Quota),
				100*float64(u.Used)/float64(u.Quota), u.Used, u.Blobs)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
