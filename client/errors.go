package client

import (
	"errors"
	"fmt"
	"net/http"

	"coffer"
	"coffer/api"
)

// Sentinel errors of this package, in addition to coffer's. Branch with errors.Is.
var (
	// ErrNotLoggedIn is returned by Resume when the state directory holds no saved session.
	ErrNotLoggedIn = errors.New("not logged in")
	// ErrSession means the server no longer accepts the session token (expired or revoked).
	ErrSession = errors.New("session expired or revoked, log in again")
	// ErrLoginFailed is a refused login: wrong username or password (the server never says which).
	ErrLoginFailed = errors.New("login failed: wrong username or password")
	// ErrRateLimited means the server asks the client to slow down (too many attempts).
	ErrRateLimited = errors.New("too many attempts, try again later")
	// ErrUnsafeName is a decrypted name that cannot be written safely on every operating system
	// (path separators, control characters, "..", Windows-reserved names...). It wraps
	// coffer.ErrInvalid.
	ErrUnsafeName = fmt.Errorf("unsafe file name: %w", coffer.ErrInvalid)
)

// ServerError is a non-2xx answer of the server. It unwraps to the coffer sentinel (or client
// sentinel) matching its code, so callers use errors.Is(err, coffer.ErrNotFound) and friends.
type ServerError struct {
	Status  int      // HTTP status
	Code    api.Code // empty if the body was not an api.Error
	Message string   // the server's message
	// Current is the tree head the server reported with a conflict.
	Current *api.HeadInfo
	// RetryAfter is the server's advice for rate-limited requests, in seconds.
	RetryAfter int
}

func (e *ServerError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("server: %s (%s)", msg, e.Code)
	}
	return fmt.Sprintf("server: %s (HTTP %d)", msg, e.Status)
}

// Unwrap maps the error code to a sentinel.
func (e *ServerError) Unwrap() error {
	switch e.Code {
	case api.CodeNotFound, api.CodeGone:
		return coffer.ErrNotFound
	case api.CodeExists:
		return coffer.ErrExist
	case api.CodeConflict:
		return coffer.ErrConflict
	case api.CodeQuota:
		return coffer.ErrQuota
	case api.CodeUnavailable:
		return coffer.ErrUnavailable
	case api.CodeForbidden, api.CodeInviteNeeded:
		return coffer.ErrForbidden
	case api.CodeUnauthorized:
		return ErrSession
	case api.CodeLoginFailed:
		return ErrLoginFailed
	case api.CodeRateLimited:
		return ErrRateLimited
	case api.CodeBadRequest, api.CodeInvalidCommit, api.CodeTooLarge:
		return coffer.ErrInvalid
	case "":
		switch {
		case e.Status == http.StatusNotFound:
			return coffer.ErrNotFound
		case e.Status == http.StatusUnauthorized:
			return ErrSession
		case e.Status >= 500:
			return coffer.ErrUnavailable
		}
	}
	return nil
}
