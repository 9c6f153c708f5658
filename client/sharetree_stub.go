package client

import "context"

func (c *Client) loadRoster(ctx context.Context, headRaw []byte) error { return nil }
func (c *Client) checkWritable() error                                 { return nil }
