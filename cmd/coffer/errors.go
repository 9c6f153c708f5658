package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"strings"
	"syscall"

	"coffer"
)

// Exit codes. They are part of the CLI's interface (documented in `coffer --help` and README.md):
// scripts branch on them, so they never change meaning.
const (
	exitOK          = 0
	exitError       = 1   // any other error
	exitUsage       = 2   // bad command line: unknown command or flag, wrong arguments, relative remote path
	exitAuth        = 3   // wrong password, not logged in, session expired or revoked, sign-up refused
	exitNotFound    = 4   // a remote or local path does not exist
	exitExists      = 5   // the destination already exists, or a conflicting change
	exitVerify      = 6   // the server sent data that failed a cryptographic check, or rolled back
	exitQuota       = 7   // quota exceeded or server storage full
	exitUnreachable = 8   // cannot reach the server, or it is temporarily unavailable
	exitInterrupted = 130 // SIGINT/SIGTERM: the command stopped cleanly; re-running resumes
)

// exitCodesHelp is the exit-code table shown by `coffer --help`.
const exitCodesHelp = `Exit codes:
  0    success
  1    other error
  2    usage error (unknown command or flag, wrong arguments, relative remote path, no password)
  3    authentication (wrong password, not logged in, session expired or revoked)
  4    not found
  5    already exists, or conflict
  6    verification failed: the server sent data that failed a cryptographic check or rolled back
  7    quota exceeded or server storage full
  8    cannot reach the server (refused, timeout, untrusted TLS certificate), or server unavailable
  130  interrupted (transfers stop cleanly; re-run the same command to resume)`

// usageError marks an error as a command-line usage error (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErr wraps err as a usage error (nil stays nil).
func usageErr(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{err: err}
}

// usagef formats a usage error.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errNoPassword is returned when a password is needed but none can be read.
var errNoPassword = errors.New("no password: use --password-file or COFFER_PASSWORD")

// exitCode maps an error to the process exit code with errors.Is / errors.As. The order
// matters: an interruption wins over the error it caused, and authentication failures of the
// login itself (exit 3) are checked before verification failures (exit 6).
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ie *interruptedError
	if errors.As(err, &ie) {
		return exitInterrupted
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	if isAuthError(err) {
		return exitAuth
	}
	switch {
	case errors.Is(err, coffer.ErrAuth), errors.Is(err, coffer.ErrRollback), errors.Is(err, coffer.ErrCorrupt):
		return exitVerify
	case errors.Is(err, coffer.ErrQuota), isStorageFull(err):
		return exitQuota
	case errors.Is(err, coffer.ErrUnavailable), isNetworkError(err):
		return exitUnreachable
	case errors.Is(err, coffer.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return exitNotFound
	case errors.Is(err, coffer.ErrExist), errors.Is(err, coffer.ErrConflict), errors.Is(err, fs.ErrExist):
		return exitExists
	case errors.Is(err, context.DeadlineExceeded):
		return exitUnreachable
	}
	return exitError
}

// isNetworkError reports whether err means the server could not be reached or the connection
// broke: refused or reset connections, DNS failures, timeouts, a response cut short.
func isNetworkError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	var ue *url.Error
	switch {
	case errors.As(err, &oe), errors.As(err, &de):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ECONNABORTED):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	case isTLSError(err):
		// An untrusted or wrong certificate: the server cannot be reached securely.
		return true
	case errors.As(err, &ue):
		// A transport failure (the request never got a response); HTTP status errors are not
		// *url.Error.
		return errors.Is(ue.Err, io.EOF) || errors.Is(ue.Err, io.ErrUnexpectedEOF) ||
			strings.Contains(ue.Err.Error(), "connection")
	}
	return false
}

// isTLSError reports a failed TLS certificate check.
func isTLSError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}
