package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"coffer/client"
	"coffer/format"
)

// Upload-only (file-request) links: anonymous `coffer put LOCAL... URL`, the owner's
// `coffer link drops`, and the automatic import of pending drops by ls, tree, get and stat.

// acceptUploadURL makes put handle a link URL as its last argument: an anonymous upload into an
// upload-only link; any other command line goes to put's own RunE.
func (a *app) acceptUploadURL(c *cobra.Command) {
	origRun := c.RunE
	var pwFile string
	c.Flags().StringVar(&pwFile, "link-password-file", "", "for a password link URL: read its password from this file (env COFFER_LINK_PASSWORD)")
	c.Long += `

With an upload-only link URL (https://HOST/s/<id>#<secret>) as the last argument, 'coffer put
LOCAL... URL' uploads the files and folders into the linked folder without an account. They are
encrypted to the link owner's key (which the URL authenticates): nobody else, the server included,
can read them, and the uploader cannot read anything in the folder. The owner sees them as
anonymous uploads via the link. --force has no effect: nothing is ever overwritten (a taken name
gets a " (1)" suffix).`
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) < 2 || !isLinkURL(args[len(args)-1]) {
			return origRun(cmd, args)
		}
		url := args[len(args)-1]
		if _, _, _, err := format.ParseLinkURL(url); err != nil {
			return usageErr(fmt.Errorf("%s: %w", url[:strings.Index(url, "/s/")+3]+"...", err))
		}
		locals := args[:len(args)-1]
		var total int64
		var files int
		for _, l := range locals {
			n, k, err := localTotal(l)
			if err != nil {
				return err
			}
			total += n
			files += k
		}
		u, err := client.OpenUploadLink(cmd.Context(), client.Config{Parallel: a.parallel, Logger: slog.New(slog.DiscardHandler)},
			url, client.LinkOpenOptions{Password: func() ([]byte, error) {
				return a.linkPassword(pwFile, "Link password: ", false)
			}})
		if err != nil {
			return err
		}
		prog := a.newProgress(total, files)
		res, err := u.Upload(cmd.Context(), locals, client.TransferOptions{Progress: prog.client()})
		prog.finish(err)
		for _, w := range res.Warnings {
			a.info("coffer: put: warning: %s", w)
		}
		if err != nil {
			return err
		}
		a.info("Uploaded %s for %s (encrypted to %s's key; you cannot read them back through this link).",
			summary(res), u.Owner(), u.Owner())
		return nil
	}
}

// importOnSession makes c (ls, tree, get, stat) import pending drops when it opens the session.
func (a *app) importOnSession(c *cobra.Command) {
	orig := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		a.importDrops = true
		return orig(cmd, args)
	}
}

// autoImportDrops imports pending drops for a command that reads the tree. It never fails the
// command: problems are warnings.
func (a *app) autoImportDrops(ctx context.Context, c *client.Client) {
	rs, err := c.ImportDrops(ctx)
	if err != nil {
		fmt.Fprintf(a.stderr, "coffer: warning: importing anonymous uploads: %v\n", err)
	}
	imported := 0
	for _, r := range rs {
		switch r.Status {
		case client.DropImported:
			imported++
		case client.DropRefused:
			fmt.Fprintf(a.stderr, "coffer: warning: refused an anonymous upload via link %s (not imported, deleted): %v\n", r.Link, r.Err)
		case client.DropPending:
			fmt.Fprintf(a.stderr, "coffer: warning: an anonymous upload via link %s stays pending: %v\n", r.Link, r.Err)
		}
	}
	if imported > 0 {
		a.info("Imported %s via upload links ('coffer link drops' lists new ones).", plural(imported, "anonymous upload"))
	}
}

// dropJSON is the --json form of a drop import result.
type dropJSON struct {
	ID       string    `json:"id"`
	Link     string    `json:"link"`
	Received time.Time `json:"received"`
	Status   string    `json:"status"` // imported, already imported, refused, pending
	Type     string    `json:"type"`   // file or folder
	Size     int64     `json:"size"`
	Path     string    `json:"path,omitempty"`
	Error    string    `json:"error,omitempty"`
}

func (a *app) linkDropsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "drops",
		Short: "Import and list anonymous uploads from upload-only links",
		Long: `Import the files and folders strangers uploaded through your upload-only links, and list them.
Each is decrypted and verified on this machine, then added to the link's folder as a file you
sign, marked as an anonymous upload via the link (see 'coffer ls -l' and 'coffer stat'). A taken
name gets a " (1)" suffix; nothing is overwritten. An upload that fails verification (a forged,
damaged or malformed one) is refused: it is not added, it is deleted from the server, and the
reason is shown. ls, tree, get and stat import pending uploads too.`,
		Example: "  coffer link drops\n  coffer link drops --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := c.ImportDrops(cmd.Context())
			if asJSON {
				out := make([]dropJSON, 0, len(rs))
				for _, r := range rs {
					j := dropJSON{ID: r.ID, Link: r.Link, Received: r.Received.UTC(), Status: r.Status, Type: "file",
						Size: r.Size, Path: r.Path}
					if r.IsDir {
						j.Type = "folder"
					}
					if r.Err != nil {
						j.Error = r.Err.Error()
					}
					out = append(out, j)
				}
				if perr := a.printJSON(out); perr != nil {
					return perr
				}
				return err
			}
			if len(rs) > 0 {
				t := newTable(a.stdout)
				t.row("RECEIVED", "LINK", "STATUS", "SIZE", "PATH")
				for _, r := range rs {
					size, what := fmt.Sprint(r.Size), r.Path
					if r.IsDir {
						size = "-"
					}
					if r.Err != nil {
						what = r.Err.Error()
					}
					t.row(r.Received.Local().Format("2006-01-02 15:04"), r.Link, r.Status, size, what)
				}
				if terr := t.flush(); terr != nil {
					return terr
				}
			} else if err == nil {
				a.info("No new anonymous uploads.")
			}
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// originNote is the ls -l / stat marker of an anonymous upload.
func originNote(e *client.Entry) string {
	if e.Origin == "" {
		return ""
	}
	return "anonymous upload via link " + e.Origin
}
