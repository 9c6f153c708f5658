package client

import (
	"context"
	"errors"
	"fmt"

	"coffer"
)

// CheckHeadsAt is CheckHeads for the tree holding the remote path p: the account tree, or the
// shared folder mounted at or above p. For a shared folder the heads are exchanged with the
// devices of every accepted member (the server serves their publications; each head must be
// signed by a writer the folder's roster names). It returns the errors CheckHeads returns, and
// an error wrapping coffer.ErrNotFound for a mount this account holds no key for.
func (c *Client) CheckHeadsAt(ctx context.Context, p string) (*HeadsReport, error) {
	tc, _, err := c.route(ctx, p, false)
	if err != nil {
		return nil, err
	}
	for range staleRetries {
		rep, err := tc.CheckHeads(ctx)
		if !errors.Is(err, errStale) { // a shared folder's key or roster changed: read again
			return rep, err
		}
	}
	return nil, fmt.Errorf("client: exchange heads at %s: the tree keeps changing, try again: %w", p, coffer.ErrConflict)
}

// ResolveForkAt is ResolveFork for the tree holding the remote path p (a shared folder mounted
// at or above p, or the account tree): this device accepts the server's current history of that
// tree, and writes to it are allowed again.
func (c *Client) ResolveForkAt(ctx context.Context, p string) error {
	tc, _, err := c.route(ctx, p, false)
	if err != nil {
		return err
	}
	return tc.ResolveFork(ctx)
}
