//go:build unix

package callbacks

import (
	"fmt"
	"syscall"
)

// FDLimit is the process's soft limit on open files (RLIMIT_NOFILE). The
// Go runtime raises the soft limit to the hard one at start, so this is
// the most the process can have.
func FDLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	return uint64(rl.Cur), nil
}
