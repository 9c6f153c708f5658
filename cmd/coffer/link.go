package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"coffer/client"
	"coffer/format"
)

// Public links: `coffer link create|ls|revoke`, and link URLs accepted by get, ls and cat
// (anonymous: no account, no saved session used).

// addLinkCommands adds the link and contact command groups and makes get, ls and cat accept
// link URLs. It must run before wrapArgs.
func (a *app) addLinkCommands(root *cobra.Command) {
	link := a.linkCmd()
	link.GroupID = "files"
	root.AddCommand(link)
	contact := a.contactCmd()
	contact.GroupID = "account"
	root.AddCommand(contact)
	for _, c := range root.Commands() {
		switch c.Name() {
		case "get", "ls", "cat":
			a.acceptLinkURL(c)
		case "put":
			a.acceptUploadURL(c) // link_drops.go
		}
		switch c.Name() {
		case "ls", "tree", "get", "stat":
			a.importOnSession(c) // link_drops.go: import pending anonymous uploads
		}
	}
}

// isLinkURL reports whether arg looks like a link URL (the library checks it strictly).
func isLinkURL(arg string) bool {
	return (strings.HasPrefix(arg, "https://") || strings.HasPrefix(arg, "http://")) && strings.Contains(arg, "/s/")
}

func (a *app) linkCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "link",
		Short: "Public links to files and folders",
		Long: `Create, list and revoke public links. A link URL looks like https://HOST/s/<id>#<secret>: the part
after # is the key, it never reaches the server. Anyone with the URL (and the password, for a
password link) can read the linked file or folder without an account:

  coffer ls URL           list a folder link
  coffer get URL [DEST]   download the linked file or folder (default DEST: .)
  coffer cat URL          write a file link's contents to stdout

Every successful open of a link (each ls, get or cat) counts as one download against
--max-downloads. After revocation, expiry or the last download the URL fails with "link revoked
or expired" (exit code 4).

An upload-only link (file request, 'link create --upload-only FOLDER') works the other way: anyone
with the URL can upload into the folder and read nothing there:

  coffer put FILE... URL  upload files and folders into an upload-only link

The uploads are encrypted to your key; 'coffer link drops' (and ls, tree, get, stat) verify them
and add them to the folder as anonymous uploads via the link.`,
		Example: "  coffer link create /photos\n  coffer link ls\n  coffer get 'https://HOST/s/ID#SECRET' ~/Downloads",
		Args:    cobra.NoArgs,
		RunE:    groupHelp,
	}
	c.AddCommand(a.linkCreateCmd(), a.linkLsCmd(), a.linkRevokeCmd(), a.linkDropsCmd())
	return c
}

// parseExpire parses "7d", "12h", "90m" (days plus anything time.ParseDuration accepts).
func parseExpire(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, usagef("--expire %q: want a positive duration like 7d, 12h or 30m", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("--expire %q: want a positive duration like 7d, 12h or 30m", s)
	}
	return d, nil
}

// linkPassword reads a link password: --link-password-file, COFFER_LINK_PASSWORD, or a prompt.
func (a *app) linkPassword(file, prompt string, confirm bool) ([]byte, error) {
	return a.secret(secretSource{file: file, fileFlag: "--link-password-file", env: "COFFER_LINK_PASSWORD"}, prompt, confirm,
		errors.New("no link password: use --link-password-file or COFFER_LINK_PASSWORD"))
}

func (a *app) linkCreateCmd() *cobra.Command {
	var (
		withPassword bool
		pwFile       string
		expire       string
		maxDownloads int64
		uploadOnly   bool
		maxUploads   int64
		asJSON       bool
	)
	c := &cobra.Command{
		Use:   "create PATH",
		Short: "Create a public link to a file or folder",
		Long: `Create a public link to a file or a whole folder and print its URL. The URL is shown only now: its
secret is stored nowhere else. --password also requires a password to open the link (read from
--link-password-file, COFFER_LINK_PASSWORD, or prompted); the server can only check guesses online,
and throttles them.

--upload-only makes a file-request link to a folder: anyone with the URL can upload into it
('coffer put FILE... URL') and read nothing there, not even what they uploaded. --max-uploads
limits how many files and folders it accepts.`,
		Example: "  coffer link create /docs/report.pdf\n  coffer link create --password --expire 7d --max-downloads 10 /photos\n" +
			"  coffer link create --upload-only --expire 30d --max-uploads 100 /inbox",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := remotePath(args[0])
			if err != nil {
				return err
			}
			if maxDownloads < 0 || maxUploads < 0 {
				return usagef("--max-downloads, --max-uploads: must not be negative")
			}
			if uploadOnly && maxDownloads > 0 {
				return usagef("--max-downloads: an upload-only link has no downloads (use --max-uploads)")
			}
			if !uploadOnly && maxUploads > 0 {
				return usagef("--max-uploads: only with --upload-only")
			}
			var opts client.LinkOptions
			opts.MaxDownloads, opts.UploadOnly, opts.MaxUploads = maxDownloads, uploadOnly, maxUploads
			if expire != "" {
				d, err := parseExpire(expire)
				if err != nil {
					return err
				}
				opts.Expires = time.Now().Add(d)
			}
			if withPassword || pwFile != "" {
				if opts.Password, err = a.linkPassword(pwFile, "Link password: ", true); err != nil {
					return err
				}
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			li, err := c.CreateLink(cmd.Context(), p, opts)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(linkToJSON(li, p))
			}
			fmt.Fprintln(a.stdout, li.URL)
			can := "read"
			if li.UploadOnly {
				can = "upload into (and read nothing in)"
			}
			a.info("Anyone with this URL%s can %s %s. It is shown only once; revoke it with 'coffer link revoke %s'.",
				map[bool]string{true: " and the password", false: ""}[li.Password], can, p, li.ID)
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&withPassword, "password", false, "require a password to open the link")
	f.StringVar(&pwFile, "link-password-file", "", "read the link password from this file (implies --password)")
	f.StringVar(&expire, "expire", "", "stop serving the link after this long (e.g. 7d, 12h, 30m)")
	f.Int64Var(&maxDownloads, "max-downloads", 0, "stop serving the link after this many opens (0: unlimited)")
	f.BoolVar(&uploadOnly, "upload-only", false, "a file-request link to a folder: visitors can upload, and read nothing")
	f.Int64Var(&maxUploads, "max-uploads", 0, "with --upload-only: accept this many files and folders (0: unlimited)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// linkJSON is the --json form of a link.
type linkJSON struct {
	ID           string     `json:"id"`
	URL          string     `json:"url,omitempty"`
	Path         string     `json:"path,omitempty"`
	Node         string     `json:"node"`
	Type         string     `json:"type"`
	Kind         string     `json:"kind"` // read or upload-only
	Password     bool       `json:"password"`
	Created      time.Time  `json:"created"`
	Expires      *time.Time `json:"expires,omitempty"`
	MaxDownloads int64      `json:"max_downloads,omitempty"`
	Downloads    int64      `json:"downloads"`
	MaxUploads   int64      `json:"max_uploads,omitempty"`
	Uploads      int64      `json:"uploads,omitempty"`
	Status       string     `json:"status"` // active, revoked, expired, used up
}

func linkStatus(li *client.LinkInfo) string {
	switch {
	case li.Revoked:
		return "revoked"
	case !li.Expires.IsZero() && !time.Now().Before(li.Expires):
		return "expired"
	case li.MaxDownloads > 0 && li.Downloads >= li.MaxDownloads, li.MaxUploads > 0 && li.Uploads >= li.MaxUploads:
		return "used up"
	}
	return "active"
}

func linkToJSON(li *client.LinkInfo, path string) linkJSON {
	j := linkJSON{ID: li.ID, URL: li.URL, Path: path, Node: li.Node.String(), Type: "file", Password: li.Password,
		Created: li.Created.UTC(), MaxDownloads: li.MaxDownloads, Downloads: li.Downloads, Status: linkStatus(li),
		Kind: "read", MaxUploads: li.MaxUploads, Uploads: li.Uploads}
	if li.IsDir {
		j.Type = "folder"
	}
	if li.UploadOnly {
		j.Kind = "upload-only"
	}
	if !li.Expires.IsZero() {
		e := li.Expires.UTC()
		j.Expires = &e
	}
	return j
}

func (a *app) linkLsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "ls",
		Short: "List your links",
		Long: `List your links, newest first, with their kind (read, or upload-only), status (active, revoked,
expired, used up), downloads (uploads, for upload-only links) and the path they point to (found by walking your drive; "-" if the node is in the trash or gone). URLs
are not shown: their secrets are stored nowhere.`,
		Example: "  coffer link ls\n  coffer link ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			ls, err := c.Links(cmd.Context())
			if err != nil {
				return err
			}
			paths := map[string]string{}
			if len(ls) > 0 {
				want := map[string]bool{}
				for _, li := range ls {
					want[li.Node.String()] = true
				}
				if err := c.Walk(cmd.Context(), "/", func(e *client.Entry) error {
					if want[e.ID.String()] {
						paths[e.ID.String()] = e.Path
					}
					return nil
				}); err != nil {
					return err
				}
			}
			if asJSON {
				out := make([]linkJSON, 0, len(ls))
				for _, li := range ls {
					out = append(out, linkToJSON(li, paths[li.Node.String()]))
				}
				return a.printJSON(out)
			}
			t := newTable(a.stdout)
			t.row("ID", "KIND", "STATUS", "USES", "EXPIRES", "PASSWORD", "PATH")
			for _, li := range ls {
				kind, n, maxN, unit := "read", li.Downloads, li.MaxDownloads, " downloads"
				if li.UploadOnly {
					kind, n, maxN, unit = "upload-only", li.Uploads, li.MaxUploads, " uploads"
				}
				dl := strconv.FormatInt(n, 10)
				if maxN > 0 {
					dl += "/" + strconv.FormatInt(maxN, 10)
				}
				dl += unit
				exp := "never"
				if !li.Expires.IsZero() {
					exp = li.Expires.Local().Format("2006-01-02 15:04")
				}
				pw := "no"
				if li.Password {
					pw = "yes"
				}
				p := paths[li.Node.String()]
				if p == "" {
					p = "-"
				}
				t.row(li.ID, kind, linkStatus(li), dl, exp, pw, p)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (a *app) linkRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID|URL...",
		Short:   "Revoke links",
		Long:    "Revoke links by ID (as shown by 'coffer link ls') or URL. The server refuses them from then on.",
		Example: "  coffer link revoke Xb3kq9zR0aPpW2l1u5cXkA",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			for _, ref := range args {
				if err := c.RevokeLink(cmd.Context(), ref); err != nil {
					return err
				}
			}
			a.info("Revoked %s.", plural(len(args), "link"))
			return nil
		},
	}
}

// acceptLinkURL makes c (get, ls or cat) handle a link URL as its first argument anonymously;
// any other command line goes to c's own Args and RunE.
func (a *app) acceptLinkURL(c *cobra.Command) {
	origArgs, origRun := c.Args, c.RunE
	var pwFile string
	c.Flags().StringVar(&pwFile, "link-password-file", "", "for a password link URL: read its password from this file (env COFFER_LINK_PASSWORD)")
	c.Long += map[string]string{
		"get": "\n\nWith a public link URL (https://HOST/s/<id>#<secret>), 'coffer get URL [DEST]' downloads the\n" +
			"linked file or folder without an account (DEST defaults to the current folder).",
		"ls": "\n\nWith a public link URL (https://HOST/s/<id>#<secret>), 'coffer ls URL [PATH]' lists a folder\n" +
			"link without an account (PATH inside the linked folder, default /).",
		"cat": "\n\nWith a public link URL (https://HOST/s/<id>#<secret>), 'coffer cat URL [PATH]' writes a file\n" +
			"link's contents (or a file's at PATH inside a folder link) without an account.",
	}[c.Name()] + " Each use of a URL opens the link\nonce, which counts as one download; see 'coffer link --help'."
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 && isLinkURL(args[0]) {
			return cobra.RangeArgs(1, 2)(cmd, args)
		}
		if origArgs == nil {
			return nil
		}
		return origArgs(cmd, args)
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 || !isLinkURL(args[0]) {
			return origRun(cmd, args)
		}
		if _, _, _, err := format.ParseLinkURL(args[0]); err != nil {
			return usageErr(fmt.Errorf("%s: %w", args[0][:strings.Index(args[0], "/s/")+3]+"...", err))
		}
		dir, err := a.configDir()
		if err != nil {
			return err
		}
		l, err := client.OpenLink(cmd.Context(), client.Config{StateDir: dir, Parallel: a.parallel, Logger: slog.New(slog.DiscardHandler)},
			args[0], client.LinkOpenOptions{Password: func() ([]byte, error) {
				return a.linkPassword(pwFile, "Link password: ", false)
			}})
		if err != nil {
			return err
		}
		switch c.Name() {
		case "get":
			return a.linkGet(cmd, l, args[1:])
		case "ls":
			return a.linkLs(cmd, l, args[1:])
		default:
			return a.linkCat(cmd, l, args[1:])
		}
	}
}

// linkPath is the optional path inside a folder link ("/" by default).
func linkPath(args []string) (string, error) {
	if len(args) == 0 {
		return "/", nil
	}
	return remotePath(args[0])
}

func (a *app) linkLs(cmd *cobra.Command, l *client.Link, args []string) error {
	p, err := linkPath(args)
	if err != nil {
		return err
	}
	es, err := l.List(cmd.Context(), p)
	if err != nil {
		return err
	}
	asJSON, _ := cmd.Flags().GetBool("json")
	long, _ := cmd.Flags().GetBool("long")
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
		t.row(modeString(e), sizeColumn(e), humanTime(e.MTime), displayName(e))
	}
	return t.flush()
}

func (a *app) linkCat(cmd *cobra.Command, l *client.Link, args []string) error {
	p, err := linkPath(args)
	if err != nil {
		return err
	}
	return l.Cat(cmd.Context(), p, a.stdout)
}

func (a *app) linkGet(cmd *cobra.Command, l *client.Link, args []string) error {
	dest := "."
	if len(args) > 0 {
		dest = args[0]
	}
	force, _ := cmd.Flags().GetBool("force")
	var total int64
	var files int
	if a.progressEnabled() {
		if err := l.Walk(cmd.Context(), "/", func(e *client.Entry) error {
			if !e.IsDir {
				total += e.Size
				files++
			}
			return nil
		}); err != nil {
			return err
		}
	}
	prog := a.newProgress(total, files)
	res, err := l.Download(cmd.Context(), "/", dest, client.TransferOptions{Progress: prog.client(), Overwrite: force})
	prog.finish(err)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dest); err == nil {
		a.info("Downloaded %s (shared by %s).", summary(res), l.Owner())
	}
	return nil
}
