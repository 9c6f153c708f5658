package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"coffer/client"
)

// defaultServer is the server URL used when neither --server, COFFER_SERVER nor a saved session
// names one.
const defaultServer = "http://127.0.0.1:8420"

// commandKind tells run how to treat a cancelled context.
type commandKind int

const (
	kindClient commandKind = iota // talks to a server: network failures are exit 8
	kindServe                     // `coffer serve`: a signal is the normal way to stop it
	kindAdmin                     // works on the data directory: no exit 8
)

// app holds one invocation's I/O, global flags and bookkeeping. Commands are closures over it
// (no package-level state).
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	// Global flags.
	server       string
	passwordFile string
	parallel     int
	quiet        bool
	noProgress   bool

	// Set by the root's PersistentPreRunE: the command line parsed and a command started.
	ctx     context.Context // the command's context (cancelled by SIGINT/SIGTERM)
	ran     bool
	cmdName string
	kind    commandKind

	// importDrops: the command reads the tree, so its session imports pending anonymous uploads
	// first (link_drops.go).
	importDrops bool
	// limitMemory: set clientMemoryLimit when a client command starts (main.go).
	limitMemory bool
}

// limitedCommand reports whether cmd runs under clientMemoryLimit: client commands whose live heap
// stays small (a 100,000-entry listing: about 55 MB), not put (its live heap grows with the number
// of files, about 1.3 KB each: under the limit a 100,000-file upload spends three times the CPU in
// the garbage collector), serve or admin.
func limitedCommand(cmd *cobra.Command) bool {
	switch {
	case cmd.Name() == "put" || cmd.Name() == "serve":
		return false
	case cmd.Parent() != nil && cmd.Parent().Name() == "admin":
		return false
	}
	return true
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr}
}

const rootLong = `Coffer is an end-to-end-encrypted cloud drive. Everything is encrypted and verified on this
machine; the server stores ciphertext it can neither read nor undetectably change.

Remote paths are absolute ("/docs/a.txt"). put and get follow cp semantics: a source goes into the
destination if that is an existing folder, otherwise it is written under the destination's name.

Environment:
  COFFER_SERVER       server URL (like --server; default: the saved session's server, else ` + defaultServer + `)
  COFFER_PASSWORD     the password (like --password-file; otherwise coffer prompts on the terminal)
  COFFER_NEW_PASSWORD the new password for passwd (like --new-password-file)
  COFFER_RECOVERY_KEY the recovery key for login --recovery-key (otherwise prompted, or read from stdin)
  COFFER_CONFIG_DIR   client state directory (session, verified heads, transfer journals;
                      default: the OS user config dir + /coffer, e.g. ~/.config/coffer)
  COFFER_DATA         server data directory for serve and admin (default e.g. ~/.local/share/coffer)
  COFFER_LISTEN       server listen address for serve (default 127.0.0.1:8420)
  COFFER_DB           server metadata store for serve/admin (like --db: a SQLite path or postgres://...)
  COFFER_BLOBS        server blob store for serve/admin (like --blobs: a directory or s3://bucket/prefix?endpoint=...)
  COFFER_S3_ACCESS_KEY, COFFER_S3_SECRET_KEY
                      S3 credentials for --blobs s3://... (else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)

` + exitCodesHelp

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "coffer",
		Short:         "End-to-end-encrypted cloud drive: client and server",
		Long:          rootLong,
		Example:       "  coffer serve &\n  coffer signup alice\n  coffer put ~/Documents /\n  coffer ls -l /Documents",
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.ran = true
			a.ctx = cmd.Context()
			a.cmdName = strings.TrimPrefix(cmd.CommandPath(), "coffer ")
			if a.parallel < 1 {
				return usagef("--parallel: must be at least 1, got %d", a.parallel)
			}
			if a.limitMemory && limitedCommand(cmd) && os.Getenv("GOMEMLIMIT") == "" {
				limit := clientMemoryLimit
				if cmd.Name() == "ls" && cmd.Parent() == cmd.Root() {
					limit = listMemoryLimit
				}
				debug.SetMemoryLimit(int64(limit))
			}
			return nil
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	root.CompletionOptions.HiddenDefaultCmd = true

	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", "", "server URL (env COFFER_SERVER; default: the saved session's server, else "+defaultServer+")")
	pf.StringVar(&a.passwordFile, "password-file", "", "read the password from this file (env COFFER_PASSWORD holds it directly)")
	pf.IntVar(&a.parallel, "parallel", 4, "number of blob transfers in flight")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print nothing but requested data and errors")
	pf.BoolVar(&a.noProgress, "no-progress", false, "never show progress bars")

	root.AddGroup(
		&cobra.Group{ID: "account", Title: "Account:"},
		&cobra.Group{ID: "files", Title: "Files:"},
		&cobra.Group{ID: "server", Title: "Server:"},
	)
	for _, c := range a.accountCommands() {
		c.GroupID = "account"
		root.AddCommand(c)
	}
	for _, c := range a.fileCommands() {
		c.GroupID = "files"
		root.AddCommand(c)
	}
	for _, c := range a.serverCommands() {
		c.GroupID = "server"
		root.AddCommand(c)
	}
	a.addLinkCommands(root) // link.go: `coffer link` and `coffer contact`, link URLs for get/ls/cat
	share := a.shareCmd()   // share.go: shared folders
	share.GroupID = "files"
	root.AddCommand(share)
	a.addHeadCommands(root) // heads.go: `coffer heads` (fork and freeze check)
	wrapArgs(root)
	return root
}

// wrapArgs makes every command's positional-argument errors usage errors (exit 2).
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		orig := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error { return usageErr(orig(cmd, args)) }
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// configDir returns the client state directory: COFFER_CONFIG_DIR, else os.UserConfigDir()/coffer.
func (a *app) configDir() (string, error) {
	if d := os.Getenv("COFFER_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (set COFFER_CONFIG_DIR): %w", err)
	}
	return filepath.Join(d, "coffer"), nil
}

// explicitServer returns --server, else COFFER_SERVER, else "".
func (a *app) explicitServer() string {
	if a.server != "" {
		return a.server
	}
	return os.Getenv("COFFER_SERVER")
}

// clientConfig builds the client configuration for server (may be empty: Resume then uses the
// saved session's server).
func (a *app) clientConfig(server string) (client.Config, error) {
	dir, err := a.configDir()
	if err != nil {
		return client.Config{}, err
	}
	if server != "" {
		server = strings.TrimRight(server, "/")
		if !strings.HasPrefix(server, "http://") && !strings.HasPrefix(server, "https://") {
			return client.Config{}, usagef("--server %q: want a URL starting with http:// or https://", server)
		}
	}
	return client.Config{
		Server:   server,
		StateDir: dir,
		Parallel: a.parallel,
		Logger:   slog.New(slog.DiscardHandler),
	}, nil
}

// session resumes the saved session (exit 3 when there is none).
func (a *app) session(ctx context.Context) (*client.Client, error) {
	cfg, err := a.clientConfig(a.explicitServer())
	if err != nil {
		return nil, err
	}
	c, err := client.Resume(ctx, cfg)
	if err != nil {
		if isNotLoggedIn(err) {
			return nil, &authError{msg: "not logged in (run 'coffer login NAME')", err: err}
		}
		return nil, err
	}
	if a.importDrops {
		a.importDrops = false
		a.autoImportDrops(ctx, c)
	}
	return c, nil
}

// pathSession parses the absolute remote path arg (usage error otherwise), then resumes the
// saved session, as most commands taking one remote path do first.
func (a *app) pathSession(ctx context.Context, arg string) (string, *client.Client, error) {
	p, err := remotePath(arg)
	if err != nil {
		return "", nil, err
	}
	c, err := a.session(ctx)
	if err != nil {
		return "", nil, err
	}
	return p, c, nil
}

// loginServer picks the server for signup/login: --server, COFFER_SERVER, the saved session's
// server (even if that session was revoked), else the default.
func (a *app) loginServer() string {
	if s := a.explicitServer(); s != "" {
		return s
	}
	if dir, err := a.configDir(); err == nil {
		if s := savedServer(dir); s != "" {
			return s
		}
	}
	return defaultServer
}

// savedServer reads the "server" field of the client's saved session (StateDir/session.json), or
// "" if there is none. Only that field is read; no network access.
func savedServer(stateDir string) string {
	b, err := os.ReadFile(filepath.Join(stateDir, "session.json"))
	if err != nil {
		return ""
	}
	var s struct {
		Server string `json:"server"`
	}
	if json.Unmarshal(b, &s) != nil {
		return ""
	}
	return s.Server
}

// device names this machine's sessions in `coffer sessions ls`.
func device() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown host"
	}
	return "coffer CLI on " + h
}

// isTerminal reports whether v is a terminal file.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// info prints a human-facing message on stderr unless --quiet.
func (a *app) info(format string, args ...any) {
	if !a.quiet {
		fmt.Fprintf(a.stderr, format+"\n", args...)
	}
}

// authError is a "not logged in"-class failure (exit 3) with a helpful message.
type authError struct {
	msg string
	err error
}

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() error { return e.err }

// groupHelp runs a command group (trash, versions, ...) given without a subcommand: it prints
// the group's help. Unknown subcommands are usage errors through the group's Args.
func groupHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// version is the module version and VCS revision the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			v += " " + s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			v += "+dirty"
		}
	}
	return v
}
