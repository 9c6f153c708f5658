package client

import (
	"errors"

	"coffer"
)

// Verification failure alerts (security research scenario 8). A server that keeps answering
// crafted data makes every operation fail the same way (one error per object, no oracle); after
// Config.AlertAfter consecutive verification failures of one kind (listings, file contents) the
// client also raises an alert: one slog warning (no names, keys or contents), the errors then
// match ErrServerAlert as well (their text is unchanged), and the client stops retrying
// automatically (listings and blob ranges are fetched once, not three times) for the rest of its
// life. A successful verification of the same kind resets the count, not the alert.

// ErrServerAlert is matched (errors.Is) by verification failures once the client raised its
// alert: the server failed verification repeatedly and may be malicious.
var ErrServerAlert = errors.New("repeated verification failures: the server may be compromised or malicious")

// defaultAlertAfter is Config.AlertAfter's default.
const defaultAlertAfter = 3

// Kinds of verification counted separately.
const (
	stageListing = "listing"
	stageContent = "content"
)

// isVerification reports whether err is a failed check of data the server sent.
func isVerification(err error) bool {
	return errors.Is(err, coffer.ErrAuth) || errors.Is(err, coffer.ErrCorrupt) || errors.Is(err, coffer.ErrRollback)
}

// alertError wraps a verification failure after the alert: same text, also ErrServerAlert.
type alertError struct{ err error }

func (e *alertError) Error() string        { return e.err.Error() }
func (e *alertError) Unwrap() error        { return e.err }
func (e *alertError) Is(target error) bool { return target == ErrServerAlert }

// verdict counts the outcome of one verification stage and returns err, marked after the alert.
// Errors that are not verification failures (network, not found, cancellation), forks and
// freezes neither count nor reset.
func (c *Client) verdict(stage string, err error) error {
	if err != nil && (!isVerification(err) || errors.Is(err, ErrFork) || errors.Is(err, ErrFreeze)) {
		return err // forks and freezes have their own, persistent alarm (forks.go)
	}
	n := c.cfg.AlertAfter
	if n <= 0 {
		n = defaultAlertAfter
	}
	c.mu.Lock()
	if err == nil {
		delete(c.watch.fails, stage)
		c.mu.Unlock()
		return nil
	}
	if c.watch.fails == nil {
		c.watch.fails = map[string]int{}
	}
	c.watch.fails[stage]++
	count := c.watch.fails[stage]
	raise := count == n
	if count >= n {
		c.watch.alerted = true
	}
	c.mu.Unlock()
	if raise {
		c.log.Warn("client: ALERT: repeated verification failures; the server may be compromised or malicious; automatic retries stopped",
			"server", c.http.base, "kind", stage, "consecutive_failures", count)
	}
	if count >= n {
		return &alertError{err: err}
	}
	return err
}

// Alerted reports whether this client raised a verification failure alert (ErrServerAlert).
func (c *Client) Alerted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watch.alerted
}

// attempts is n, or 1 once the client raised its alert (no automatic retries any more).
func (c *Client) attempts(n int) int {
	if c.Alerted() {
		return 1
	}
	return n
}
