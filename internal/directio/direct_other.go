//go:build !linux

package directio

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("direct I/O not supported on this system")

// directFlag: no open flag for direct I/O on this system.
const directFlag = 0

// setDirect: ordinary writes only on this system.
func setDirect(f *os.File, on bool) error {
	if on {
		return errUnsupported
	}
	return nil
}

func isInval(error) bool { return false }
