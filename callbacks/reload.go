package callbacks

import (
	"bytes"
	"errors"
	"strconv"
)

// SetSecrets replaces the callback secrets (a SIGHUP reload): requests
// that start after it verify against the new list; one being verified
// finishes with the list it started with. The same rules as NewHandler's
// apply: at least one secret, none empty; on error nothing changes.
func (h *Handler) SetSecrets(secrets [][]byte) error {
	if len(secrets) == 0 {
		return ErrNoSecrets
	}
	cp := make([][]byte, len(secrets))
	for i, s := range secrets {
		if len(s) == 0 {
			return errors.New("callbacks: callback secret " + strconv.Itoa(i) + " is empty")
		}
		cp[i] = bytes.Clone(s)
	}
	h.secrets.Store(&cp)
	return nil
}

// SetDraining makes /healthz answer 503 {"reason":"draining"} (true) or
// report the store again (false). Callbacks are served as before: a
// balancer takes the instance out on its failed checks while requests
// already routed here still get their commit and their answer.
func (h *Handler) SetDraining(on bool) { h.draining.Store(on) }

// Draining reports whether SetDraining(true) is in effect.
func (h *Handler) Draining() bool { return h.draining.Load() }
