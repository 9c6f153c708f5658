//go:build !linux

package client

import "testing"

// cachedPages: unknown on this system.
func cachedPages(*testing.T, string) (int, bool) { return 0, false }
