package main

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"coffer/client"
)

func (a *app) fileCommands() []*cobra.Command {
	return []*cobra.Command{
		a.lsCmd(), a.treeCmd(), a.statCmd(), a.mkdirCmd(), a.putCmd(), a.getCmd(), a.catCmd(),
		a.mvCmd(), a.rmCmd(), a.trashCmd(), a.versionsCmd(), a.duCmd(), a.quotaCmd(),
	}
}

// remotePath checks that arg is an absolute remote path and cleans it. A relative path is a
// usage error naming it.
func remotePath(arg string) (string, error) {
	if !strings.HasPrefix(arg, "/") {
		return "", usagef("remote path %q is relative: remote paths are absolute, e.g. /%s", arg, strings.TrimLeft(arg, "./"))
	}
	return path.Clean(arg), nil
}

// remotePaths applies remotePath to every argument.
func remotePaths(args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for _, arg := range args {
		p, err := remotePath(arg)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// optionalPath returns the single optional PATH argument, "/" by default.
func optionalPath(args []string) (string, error) {
	if len(args) == 0 {
		return "/", nil
	}
	return remotePath(args[0])
}

func (a *app) lsCmd() *cobra.Command {
	var long, asJSON bool
	c := &cobra.Command{
		Use:     "ls [PATH]",
		Short:   "List a folder",
		Long:    "List a folder's entries sorted by name (folders end in /), or a file itself. PATH defaults to /.",
		Example: "  coffer ls\n  coffer ls -l /docs\n  coffer ls --json /docs | jq '.[].name'",
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
			es, err := c.List(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printEntriesJSON(es)
			}
			if !long {
				for _, e := range es {
					fmt.Fprintln(a.stdout, displayName(e))
				}
				return nil
			}
			t := newTable(a.stdout)
			for _, e := range es {
				name := displayName(e)
				if o := originNote(e); o != "" {
					name += "  (" + o + ")"
				}
				t.row(modeString(e), sizeColumn(e), humanTime(e.MTime), name)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVarP(&long, "long", "l", false, "long listing: mode, size, modification time, name (and the origin of anonymous uploads)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// displayName is an entry's name with a trailing "/" for folders.
func displayName(e *client.Entry) string {
	if e.IsDir {
		return e.Name + "/"
	}
	return e.Name
}

func sizeColumn(e *client.Entry) string {
	if e.IsDir {
		return "-"
	}
	return fmt.Sprint(e.Size)
}

func (a *app) treeCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "tree [PATH]",
		Short:   "Show a folder's whole subtree",
		Long:    "Show a folder and everything below it as a tree. --json prints every entry as a flat array, parents first.",
		Example: "  coffer tree\n  coffer tree /photos\n  coffer tree --json /photos",
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
			var all []*client.Entry
			if err := c.Walk(cmd.Context(), p, func(e *client.Entry) error {
				all = append(all, e)
				return nil
			}); err != nil {
				return err
			}
			if asJSON {
				return a.printEntriesJSON(all)
			}
			a.printTree(all)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// printTree renders Walk's output (the first entry is the top) with box-drawing connectors.
func (a *app) printTree(all []*client.Entry) {
	if len(all) == 0 {
		return
	}
	children := make(map[string][]*client.Entry)
	for _, e := range all[1:] {
		parent := path.Dir(e.Path)
		children[parent] = append(children[parent], e)
	}
	top := all[0]
	fmt.Fprintln(a.stdout, top.Path)
	var dirs, files int
	var walk func(p, indent string)
	walk = func(p, indent string) {
		kids := children[p]
		sort.Slice(kids, func(i, j int) bool { return kids[i].Name < kids[j].Name })
		for i, e := range kids {
			conn, next := "├── ", "│   "
			if i == len(kids)-1 {
				conn, next = "└── ", "    "
			}
			fmt.Fprintln(a.stdout, indent+conn+displayName(e))
			if e.IsDir {
				dirs++
				walk(e.Path, indent+next)
			} else {
				files++
			}
		}
	}
	if top.IsDir {
		walk(top.Path, "")
	}
	fmt.Fprintf(a.stdout, "\n%d folders, %d files\n", dirs, files)
}

func (a *app) statCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "stat PATH",
		Short:   "Show a file's or folder's metadata",
		Example: "  coffer stat /docs/report.pdf\n  coffer stat --json /docs",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := a.pathSession(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			e, err := c.Stat(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(toJSON(e))
			}
			j := toJSON(e)
			t := newTable(a.stdout)
			t.row("path:", j.Path)
			t.row("type:", j.Type)
			t.row("id:", j.ID)
			if !e.IsDir {
				t.row("size:", fmt.Sprintf("%d (%s)", e.Size, humanSize(e.Size)))
				t.row("sha256:", j.SHA256)
			}
			t.row("mode:", modeString(e))
			t.row("modified:", e.MTime.Local().Format("2006-01-02 15:04:05 -0700"))
			t.row("version:", fmt.Sprint(e.Version))
			if e.TrashOrigin != "" {
				t.row("trashed from:", e.TrashOrigin)
			}
			if o := originNote(e); o != "" {
				t.row("origin:", o)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (a *app) mkdirCmd() *cobra.Command {
	var parents bool
	c := &cobra.Command{
		Use:     "mkdir PATH...",
		Short:   "Create folders",
		Long:    "Create folders. With -p, missing parents are created too and an existing folder is not an error.",
		Example: "  coffer mkdir /docs\n  coffer mkdir -p /photos/2026/summer /photos/2026/winter",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := remotePaths(args)
			if err != nil {
				return err
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range ps {
				if _, err := c.Mkdir(cmd.Context(), p, parents); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&parents, "parents", "p", false, "create missing parents; no error if the folder exists")
	return c
}

func (a *app) catCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "cat PATH...",
		Short:   "Write files' contents to stdout",
		Long:    "Write the files' verified contents to stdout, in order. Only verified bytes are ever written.",
		Example: "  coffer cat /notes/todo.txt\n  coffer cat /logs/a.log /logs/b.log | grep error",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := remotePaths(args)
			if err != nil {
				return err
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range ps {
				if err := c.Cat(cmd.Context(), p, a.stdout); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func (a *app) mvCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mv SRC... DST",
		Short: "Move or rename files and folders",
		Long: `Move or rename. If DST is an existing folder, each SRC goes inside it; otherwise the single SRC
is renamed to DST. An existing file is never overwritten.`,
		Example: "  coffer mv /draft.txt /final.txt\n  coffer mv /a.txt /b.txt /archive",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := remotePaths(args)
			if err != nil {
				return err
			}
			srcs, dst := ps[:len(ps)-1], ps[len(ps)-1]
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			if len(srcs) > 1 {
				e, err := c.Stat(cmd.Context(), dst)
				if err != nil {
					return err
				}
				if !e.IsDir {
					return fmt.Errorf("%s is not a folder (moving several sources needs a folder destination): %w", dst, errExistsNotDir)
				}
			}
			for _, src := range srcs {
				if err := c.Move(cmd.Context(), src, dst); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm PATH...",
		Short:   "Move files and folders to the trash",
		Long:    "Move files and folders to the trash. 'coffer trash restore' brings them back; 'coffer trash empty' deletes them for good.",
		Example: "  coffer rm /old.txt\n  coffer rm /tmp /scratch",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := remotePaths(args)
			if err != nil {
				return err
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range ps {
				if err := c.Remove(cmd.Context(), p); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// walkTotal sums the sizes of the files under remote paths (for the total progress bar).
func walkTotal(ctx context.Context, c *client.Client, paths []string) (int64, int, error) {
	var total int64
	var files int
	for _, p := range paths {
		if err := c.Walk(ctx, p, func(e *client.Entry) error {
			if !e.IsDir {
				total += e.Size
				files++
			}
			return nil
		}); err != nil {
			return 0, 0, err
		}
	}
	return total, files, nil
}
