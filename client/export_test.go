package client

import "coffer"

// SetBigFolder sets the number of children from which List frees a folder's decrypted nodes.
func SetBigFolder(c *Client, n int) { c.bigFolder = n }

// CachedFolder reports whether c's cached view holds folder id decrypted (nodes) and whether it
// holds its verified commitment entries only.
func CachedFolder(c *Client, id coffer.NodeID) (nodes, entries bool) {
	c.mu.Lock()
	v := c.cache
	c.mu.Unlock()
	if v == nil {
		return false, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.folders[id] != nil, v.entries[id] != nil
}
