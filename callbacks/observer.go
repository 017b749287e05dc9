package callbacks

import "time"

// Observer learns what the listener does, for metrics (main wires package
// metrics in). Its methods run on the request path and on the group
// committer's goroutine, so they must be quick and must never block: a
// slow observer would slow every answer. The counts the handler keeps
// anyway (verified, replays, 503s) are in Stats; the observer hears what
// Stats does not break down.
type Observer interface {
	// Refused is called once per refused callback (checks 0–3) with the
	// code it was answered: body_too_large, timestamp_out_of_range,
	// bad_signature or invalid_payload. Never the detail, which quotes
	// what the client sent.
	Refused(code string)
	// Committed is called after each group commit with the events the
	// sink was given, how long it took and its error (nil: committed).
	Committed(events int, took time.Duration, err error)
}

// observerRef boxes an Observer so that it fits an atomic.Pointer.
type observerRef struct{ Observer }

// SetObserver makes o the handler's observer from now on; nil removes it.
// It is a setter rather than a Config field because main builds the
// handler before it knows whether metrics are on; it is safe while
// requests are served.
func (h *Handler) SetObserver(o Observer) {
	if o == nil {
		h.observer.Store(nil)
		return
	}
	h.observer.Store(&observerRef{o})
}

// observe returns the observer, nil when there is none.
func (h *Handler) observe() Observer {
	if r := h.observer.Load(); r != nil {
		return r.Observer
	}
	return nil
}
