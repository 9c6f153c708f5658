package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"

	"coffer"
	"coffer/client"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1048576": 1 << 20, "10GiB": 10 << 30, "10gib": 10 << 30, "1.5KiB": 1536,
		"2K": 2048, "3MB": 3e6, "1 TiB": 1 << 40, "7b": 7, "500MiB": 500 << 20,
	}
	for in, want := range good {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "ten", "10XB", "-1", "1e400", "9999999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): want an error", in)
		}
	}
}

func TestExitCode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("client: something %q: %w", "/a", err) }
	cases := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitError},
		{usagef("bad"), exitUsage},
		{usageErr(errNoPassword), exitUsage},
		{wrap(client.ErrLoginFailed), exitAuth},
		{wrap(client.ErrSession), exitAuth},
		{wrap(client.ErrNotLoggedIn), exitAuth},
		{&authError{msg: "not logged in", err: coffer.ErrNotFound}, exitAuth},
		{wrap(coffer.ErrForbidden), exitAuth},
		{wrap(coffer.ErrNotFound), exitNotFound},
		{&fs.PathError{Op: "lstat", Path: "x", Err: fs.ErrNotExist}, exitNotFound},
		{wrap(coffer.ErrExist), exitExists},
		{wrap(coffer.ErrConflict), exitExists},
		{wrap(coffer.ErrAuth), exitVerify},
		{wrap(coffer.ErrRollback), exitVerify},
		{wrap(coffer.ErrCorrupt), exitVerify},
		{wrap(coffer.ErrQuota), exitQuota},
		{wrap(&client.ServerError{Status: 507, Code: "unavailable", Message: "disk full"}), exitQuota},
		{wrap(coffer.ErrUnavailable), exitUnreachable},
		{wrap(&url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}), exitUnreachable},
		{wrap(&interruptedError{sig: os.Interrupt}), exitInterrupted},
		{fmt.Errorf("%w (%w)", &interruptedError{sig: os.Interrupt}, context.Canceled), exitInterrupted},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestRemotePath(t *testing.T) {
	for in, want := range map[string]string{"/": "/", "/a/b/": "/a/b", "/a/./b": "/a/b", "/a/../b": "/b"} {
		got, err := remotePath(in)
		if err != nil || got != want {
			t.Errorf("remotePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "./a", "docs/x.txt"} {
		_, err := remotePath(in)
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("remotePath(%q) = %v; want a usage error naming it", in, err)
		}
	}
}

// Every command documents itself with a short description and an example.
func TestEveryCommandHasHelpAndExample(t *testing.T) {
	root := newApp(nil, &bytes.Buffer{}, &bytes.Buffer{}).rootCommand()
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		n++
		if c.Short == "" || c.Example == "" {
			t.Errorf("%s: missing Short or Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 30 {
		t.Errorf("only %d commands found", n)
	}
	if !strings.Contains(root.Long, "130  interrupted") || !strings.Contains(root.Long, "6    verification failed") {
		t.Error("root help does not document the exit codes")
	}
}

// run() itself: exit codes and the error format for command lines that never reach a server.
func TestRunUsage(t *testing.T) {
	t.Setenv("COFFER_CONFIG_DIR", t.TempDir())
	t.Setenv("COFFER_PASSWORD", "")
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"frobnicate"}, exitUsage, `coffer: unknown command "frobnicate"`},
		{[]string{"ls", "--frob"}, exitUsage, "coffer: ls: unknown flag: --frob"},
		{[]string{"ls", "docs"}, exitUsage, `coffer: ls: remote path "docs" is relative`},
		{[]string{"put", "x"}, exitUsage, "coffer: put: requires at least 2 arg(s)"},
		{[]string{"trash", "frob"}, exitUsage, `coffer: trash: unknown command "frob"`},
		{[]string{"versions", "restore", "/a", "x"}, exitUsage, `coffer: versions restore: VERSION "x"`},
		{[]string{"--parallel", "0", "ls"}, exitUsage, "coffer: ls: --parallel"},
		{[]string{"serve", "--quota", "lots"}, exitUsage, `coffer: serve: --quota: size "lots"`},
		{[]string{"serve", "--tls-cert", "c.pem"}, exitUsage, "coffer: serve: --tls-cert and --tls-key"},
		{[]string{"login", "alice"}, exitUsage, "coffer: login: no password: use --password-file or COFFER_PASSWORD"},
		{[]string{"ls"}, exitAuth, "coffer: ls: not logged in"},
		{[]string{"--help"}, exitOK, ""},
		{[]string{"trash"}, exitOK, ""},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, strings.NewReader(""), &out, &errb)
		if code != c.code || !strings.HasPrefix(errb.String(), c.msg) {
			t.Errorf("coffer %s: exit %d, stderr %q; want exit %d, stderr starting %q",
				strings.Join(c.args, " "), code, errb.String(), c.code, c.msg)
		}
	}
}

// The mpb progress display is safe for concurrent trackers and ends with the total.
func TestProgress(t *testing.T) {
	var out bytes.Buffer
	pr := newProgressTo(&out, 10<<20, 12, mpb.WithWidth(100), mpb.WithAutoRefresh())
	var cp client.Progress = pr.client()
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			size := int64(10<<20) / 12
			tr := cp.Start(fmt.Sprintf("/dir/file-%02d-with-a-long-name-that-gets-shortened.bin", i), size)
			for range 4 {
				tr.Add(size / 4)
			}
			tr.Done(nil)
			tr.Done(nil) // idempotent
		})
	}
	wg.Wait()
	pr.finish(nil)
	if !strings.Contains(out.String(), "total") {
		t.Fatalf("no total bar in %q", out.String())
	}
	var nilProgress *progress
	if nilProgress.client() != nil {
		t.Fatal("disabled progress must be a nil client.Progress")
	}
	nilProgress.finish(nil)
	if got := shorten("abcdefghij", 5); got != "…ghij" {
		t.Fatalf("shorten: %q", got)
	}
}

// TestLimitedCommand: the client memory limit applies to listing and download commands, not to
// put (live heap grows with the file count), serve or admin.
func TestLimitedCommand(t *testing.T) {
	root := newApp(strings.NewReader(""), io.Discard, io.Discard).rootCommand()
	for args, want := range map[string]bool{"ls": true, "get": true, "tree": true, "put": false, "serve": false, "admin fsck": false} {
		cmd, _, err := root.Find(strings.Fields(args))
		if err != nil || cmd == root {
			t.Fatalf("%s: not found: %v", args, err)
		}
		if got := limitedCommand(cmd); got != want {
			t.Errorf("limitedCommand(%s) = %v, want %v", args, got, want)
		}
	}
}
