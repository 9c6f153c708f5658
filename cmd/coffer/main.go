// Command coffer is the Coffer command-line client and server.
//
// `coffer serve` runs the server; every other command talks to one. See `coffer --help` and
// README.md in this directory for commands, environment variables and exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(runProcess(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, true))
}

// clientMemoryLimit is the Go memory limit of most client commands (limitedCommand; unless
// GOMEMLIMIT is set): a soft limit that makes the garbage collector work harder instead of letting
// the heap grow to twice its live size, so that peak RSS stays under 100 MiB. The server is not
// limited. listMemoryLimit is ls's: a verified 100,000-entry listing turns records into entries as
// they stream in and has about 38 MB live at its peak, so 64 MiB keeps its RSS near 77 MiB (80 MiB
// allowed the heap to 66 MB and RSS to 88-94 MiB) for the same CPU.
const (
	clientMemoryLimit = 80 << 20
	listMemoryLimit   = 64 << 20
)

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runProcess(args, stdin, stdout, stderr, false)
}

// runProcess executes one command line and returns the process exit code. It installs the signal
// handling: the first SIGINT/SIGTERM cancels the command's context (transfers stop cleanly, the
// exit code is 130 for client commands, 0 for `coffer serve`); a second one kills the process.
// limitMemory sets clientMemoryLimit for client commands (the binary; not in-process tests).
func runProcess(args []string, stdin io.Reader, stdout, stderr io.Writer, limitMemory bool) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-sigs:
			cancel(&interruptedError{sig: sig})
		case <-done:
		}
		signal.Stop(sigs) // a second signal gets the default action: the process dies
	}()

	app := newApp(stdin, stdout, stderr)
	app.limitMemory = limitMemory
	root := app.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ie *interruptedError
	if errors.As(context.Cause(ctx), &ie) && app.kind != kindServe {
		// Whatever the command was doing when the signal arrived, it stopped because of it.
		var inner *interruptedError
		if errors.As(err, &inner) || errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: stopped cleanly; re-run the same command to resume", ie)
		} else {
			err = fmt.Errorf("%w: %v", ie, err)
		}
	}
	if !app.ran {
		err = usageErr(err)
	}
	code := exitCode(err)
	if app.kind != kindClient && code == exitUnreachable {
		code = exitError // e.g. serve's listen address in use: no server to reach
	}
	name := app.cmdName
	if name == "" {
		name = commandName(root, args)
	}
	fmt.Fprintf(stderr, "coffer: %s%s\n", prefix(name), message(err))
	if code == exitUsage && !errors.Is(err, errNoPassword) {
		hint := "coffer --help"
		if name != "" {
			hint = "coffer " + name + " --help"
		}
		fmt.Fprintf(stderr, "Run '%s' for usage.\n", hint)
	}
	return code
}

func prefix(name string) string {
	if name == "" {
		return ""
	}
	return name + ": "
}

// commandName finds the (sub)command path named by args, for error messages about a command
// line that failed to parse.
func commandName(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == nil || c == root {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
}

// interruptedError is the cancellation cause installed when a signal arrives.
type interruptedError struct{ sig os.Signal }

func (e *interruptedError) Error() string { return "interrupted" }
