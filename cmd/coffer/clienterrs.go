package main

import (
	"errors"
	"net/http"
	"strings"

	"coffer"
	"coffer/api"
	"coffer/client"
)

// This file is the one place that knows the client library's own error sentinels.

// isNotLoggedIn reports whether a Resume error means there is no saved session.
func isNotLoggedIn(err error) bool { return errors.Is(err, client.ErrNotLoggedIn) }

// isAuthError reports an authentication failure (exit 3): wrong password or recovery key, not
// logged in, session expired or revoked, too many login attempts, sign-up refused (invite
// required, forbidden).
func isAuthError(err error) bool {
	var ae *authError
	return errors.As(err, &ae) ||
		errors.Is(err, client.ErrNotLoggedIn) ||
		errors.Is(err, client.ErrSession) ||
		errors.Is(err, client.ErrLoginFailed) ||
		errors.Is(err, client.ErrRateLimited) ||
		errors.Is(err, coffer.ErrForbidden)
}

// isStorageFull reports a server whose storage is full: it answers "unavailable" with HTTP 507.
func isStorageFull(err error) bool {
	var se *client.ServerError
	return errors.As(err, &se) && se.Status == http.StatusInsufficientStorage && se.Code != api.CodeQuota
}

// message renders err for "coffer: <command>: <message>". Failures whose detail adds nothing for
// the user (which request got the 401) get the sentinel's own text.
func message(err error) string {
	var ie *interruptedError
	switch {
	case errors.As(err, &ie):
	case errors.Is(err, client.ErrLoginFailed):
		return client.ErrLoginFailed.Error()
	case errors.Is(err, client.ErrSession):
		return "session expired or revoked: log in again with 'coffer login NAME'"
	}
	return strings.TrimPrefix(err.Error(), "client: ")
}
