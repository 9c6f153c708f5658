package client

import (
	"context"

	"coffer/format"
)

// HPKESeals is how many HPKE seals (invites) this session made.
func HPKESeals(c *Client) int64 { return c.shares.seals.Load() }

// HeldKeys returns every key c holds for the shared folder mounted at p: the tree key and the
// node and content keys of every node it can read (what a member keeps after it is removed).
func HeldKeys(ctx context.Context, c *Client, p string) (format.TreeKey, []format.NodeKey, []format.ContentKey, error) {
	tc, _, err := c.route(ctx, p, false)
	if err != nil {
		return format.TreeKey{}, nil, nil, err
	}
	tc.share.mu.Lock()
	tk := tc.share.key
	tc.share.mu.Unlock()
	var nks []format.NodeKey
	var cks []format.ContentKey
	err = tc.withView(ctx, func(v *view) error {
		nks, cks = nil, nil
		for _, top := range []*node{v.root, v.trash} {
			all, err := v.collect(ctx, tc, &located{path: tc.rootPath(), node: top, parent: v.top})
			if err != nil {
				return err
			}
			for _, w := range all {
				nks = append(nks, w.n.key)
				if ct := w.n.body.Content; ct != nil {
					cks = append(cks, ct.Key)
				}
			}
		}
		return nil
	})
	return tk, nks, cks, err
}

// RawRecords returns the raw records of every live node of the tree holding p (as served).
func RawRecords(ctx context.Context, c *Client, p string) ([][]byte, error) {
	tc, _, err := c.route(ctx, p, false)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	err = tc.withView(ctx, func(v *view) error {
		out = nil
		var walk func(id [16]byte) error
		walk = func(id [16]byte) error {
			raw, err := tc.fetchListing(ctx, id, "raw")
			if err != nil {
				return err
			}
			recs := raw.recRaw
			out = append(out, recs...)
			for _, b := range recs {
				r, err := format.ParseRecord(b)
				if err != nil {
					return err
				}
				if r.Kind == format.KindFolder {
					if err := walk(r.Node); err != nil {
						return err
					}
				}
			}
			return nil
		}
		return walk([16]byte{})
	})
	return out, err
}
