//go:build !unix

package callbacks

import "errors"

// FDLimit reports that the open-file limit is unknown on this system;
// MaxConns then falls back to DefaultMaxConnsUnknownLimit.
func FDLimit() (uint64, error) {
	return 0, errors.New("the open-file limit is not known on this system")
}
