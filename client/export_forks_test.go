package client

// SetHeadsBatch sets the heads c asks for per request (tests of the batching without a thousand
// commits).
func SetHeadsBatch(c *Client, n uint64) {
	c.mu.Lock()
	c.watch.headsBatch = n
	c.mu.Unlock()
}
