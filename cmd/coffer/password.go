package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"

	"coffer/format"
)

// secretSource says where a secret comes from: a file flag, an environment variable, or (on a
// terminal) an echo-free prompt.
type secretSource struct {
	file     string // path from a --*-file flag; "" if not given
	fileFlag string // the flag's name, for messages
	env      string // environment variable name
}

// password reads the account password: --password-file, COFFER_PASSWORD, or a prompt when stdin
// is a terminal. confirm asks twice on a terminal (new passwords).
func (a *app) password(prompt string, confirm bool) ([]byte, error) {
	return a.secret(secretSource{file: a.passwordFile, fileFlag: "--password-file", env: "COFFER_PASSWORD"}, prompt, confirm, errNoPassword)
}

// newPassword reads passwd's new password: --new-password-file, COFFER_NEW_PASSWORD, or a prompt.
func (a *app) newPassword(file string) ([]byte, error) {
	return a.secret(secretSource{file: file, fileFlag: "--new-password-file", env: "COFFER_NEW_PASSWORD"}, "New password: ", true,
		errors.New("no new password: use --new-password-file or COFFER_NEW_PASSWORD"))
}

func (a *app) secret(src secretSource, prompt string, confirm bool, missing error) ([]byte, error) {
	var pw []byte
	switch {
	case src.file != "":
		b, err := os.ReadFile(src.file)
		if err != nil {
			return nil, usagef("%s: %w", src.fileFlag, err)
		}
		// The password is the file's first line, without its line ending.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[:i]
		}
		pw = bytes.TrimSuffix(b, []byte("\r"))
	case os.Getenv(src.env) != "":
		pw = []byte(os.Getenv(src.env))
	case isTerminal(a.stdin):
		var err error
		pw, err = a.prompt(prompt)
		if err != nil {
			return nil, err
		}
		if confirm {
			again, err := a.prompt("Repeat " + strings.ToLower(prompt[:1]) + prompt[1:])
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(pw, again) {
				return nil, usagef("the passwords do not match")
			}
		}
	default:
		return nil, usageErr(missing)
	}
	if len(pw) == 0 {
		return nil, usagef("empty password")
	}
	return pw, nil
}

// prompt reads one line from the terminal on stdin with echo off; the prompt goes to stderr. A
// signal while it waits restores the terminal (echo back on) and ends the command.
func (a *app) prompt(prompt string) ([]byte, error) {
	fd := int(a.stdin.(*os.File).Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(a.stderr, prompt)
	type answer struct {
		b   []byte
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		ch <- answer{b, err}
	}()
	var ans answer
	select {
	case ans = <-ch:
	case <-a.ctx.Done():
		term.Restore(fd, state)
		fmt.Fprintln(a.stderr)
		return nil, context.Cause(a.ctx)
	}
	fmt.Fprintln(a.stderr)
	if ans.err != nil {
		return nil, fmt.Errorf("read password: %w", ans.err)
	}
	return ans.b, nil
}

// recoveryKey reads a recovery key: COFFER_RECOVERY_KEY, an echo-free prompt on a terminal, or
// the first line of stdin otherwise.
func (a *app) recoveryKey() (format.RecoveryKey, error) {
	var s string
	switch {
	case os.Getenv("COFFER_RECOVERY_KEY") != "":
		s = os.Getenv("COFFER_RECOVERY_KEY")
	case isTerminal(a.stdin):
		b, err := a.prompt("Recovery key: ")
		if err != nil {
			return format.RecoveryKey{}, err
		}
		s = string(b)
	default:
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && line == "" {
			return format.RecoveryKey{}, usagef("no recovery key: set COFFER_RECOVERY_KEY or pass it on stdin")
		}
		s = line
	}
	rk, err := format.ParseRecoveryKey(strings.TrimSpace(s))
	if err != nil {
		return format.RecoveryKey{}, usagef("recovery key: %w", err)
	}
	return rk, nil
}
