//go:build linux

package directio

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// directFlag is the open(2) flag for direct I/O.
const directFlag = unix.O_DIRECT

// setDirect turns O_DIRECT on or off for f's open file description.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			ferr = err
			return
		}
		nf := flags &^ unix.O_DIRECT
		if on {
			nf |= unix.O_DIRECT
		}
		if nf != flags {
			_, ferr = unix.FcntlInt(fd, unix.F_SETFL, nf)
		}
	}); err != nil {
		return err
	}
	return ferr
}

func isInval(err error) bool { return errors.Is(err, unix.EINVAL) }
