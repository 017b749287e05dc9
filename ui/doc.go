// Package ui is leadwatch's Bubble Tea dashboard: a live view of the
// outbox and the callback listener over a Source (the store), with the
// few actions an operator needs during a campaign launch.
//
// # Layout
//
//	leadwatch │ ▶ sending │ ● listening 127.0.0.1:8081 │ CRM https://crm…
//	0 queued · 0 in flight · 3 retry wait · 120 accepted · 2 duplicate · …
//	callbacks ✓ 130 verified · ✗ 2 refused · ? 1 unmatched   sent ▁▂▅█ 42/min …
//	┏━ Pending retries (3) ━━━━━━━━━┓╭─ Duplicates (2) ──────────────╮
//	┃ external_id, countdown, n/max,┃│ external_id, CRM id, reason   │
//	┃ last HTTP code or error, why  ┃│                               │
//	┗━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┛╰───────────────────────────────╯
//	╭─ Rejections (3) ──────────────╮╭─ Status events (3) ───────────╮
//	│ rejected, validation_error,   ││ ✓ verified, ? unmatched,      │
//	│ failed, with the reason       ││ ✗ refused callbacks, by time  │
//	╰───────────────────────────────╯╰───────────────────────────────╯
//	tab next pane • ↓/j down • enter details • r resubmit …   ✗ last error
//
// The header is three lines: sending state, listener health and the CRM
// base URL (credentials and query stripped); the outbox by state; the
// callback counts (polled statuses apart, ◇, once there are any) and two
// sparklines (attempts sent, callbacks stored) of the last five minutes
// in 10 s buckets. While a forwarder has ever run on the store a fourth
// line shows the queue to the user's app: queued, in flight, failed,
// delivered, lag, and the last error (never the URL's credentials), red
// while deliveries failed for good or the queue stood still for two
// minutes (a delivery pending, or callbacks waiting to be queued). The
// four panes share the screen as a 2×2 grid from 120×30 up; below that
// they become tabs (1–4 or tab switch). Below 60×16 the dashboard shows "terminal too small" instead of
// a broken frame. The focused pane has a heavy border and a ▸ row marker,
// visible with NO_COLOR too. The status bar shows the keys that matter
// now and the latest error: a failed action, a failed refresh (the parts
// that worked still update), or the listener's bind failure.
//
// enter opens the detail view: for a lead, its timeline across both
// directions (enqueued, every attempt with HTTP code, duration and chosen
// delay, resubmissions, every callback, every polled status marked ◇,
// every delivery to the app with its status, latency and first bytes),
// the payload and the last
// response as indented JSON, scrollable; for a refused callback, the
// precise reason, code, remote address and the first bytes; for an
// unmatched callback, its fields and body.
//
// # Keys
//
//	tab / shift+tab, 1–4    focus the next / previous / a given pane
//	j k ↑ ↓, pgup pgdn, g G move; past the window the pane pages through the store
//	enter / esc             open the detail view / back (esc on the dashboard clears the filter)
//	r                       resubmit a failed, rejected, validation_error or duplicate lead;
//	                        asks first (default No) and says which idempotency key is used
//	e / E                   edit the payload (built-in editor, or $VISUAL/$EDITOR) and resubmit;
//	                        ctrl+s checks it is a JSON lead with the same external_id
//	c                       copy the lead as an sh + curl snippet that signs afresh at run time
//	                        with $CARTELCRM_HMAC_SECRET and $CARTELCRM_API_KEY (never embedded);
//	                        copied by OSC 52 and shown in a modal for tmux
//	a                       replay to the app: the selected callback (Status events), or every
//	                        stored status of the lead shown; asks first; needs forwarding on
//	/                       filter the focused pane (live); enter keeps it, esc clears it
//	p                       pause / resume sending
//	?                       all keys
//	q, ctrl+c               quit (the model returns tea.Quit; main shuts down)
//
// # Data flow
//
// Update and View never touch the Source. A refresh is one Cmd that asks
// for the store's Health, Counts, Throughput and only the rows each
// visible pane can show (Limit = its height); at most one runs at a time,
// a change during it schedules one follow-up, and follow-ups are paced to
// ten a second. Refreshes are triggered by Config.Changes (a Cmd blocks on
// it and re-arms after each signal), by a pane moving its window or
// filter, and by the 1 s tick when the sparkline's bucket rolls over or
// the health on screen is two seconds old (or every tick when there is no
// change channel): a store that stopped committing signals no change.
// While Health reports a code, the header's listener indicator shows the
// store's trouble in red and the status bar keeps its detail. The tick
// also moves countdowns and reads Config.Status. Rows carry what a pane draws; the detail view
// loads the rest when it opens (a lead's story, a callback's raw body).
//
// # Code
//
// Model is a root that routes. It holds the four panes as typed fields
// and reaches them through Model.pane, an accessor returning the pane
// interface, so focus, filter, selection and refresh are written once.
// The refresh cycle (in-flight query, coalescing, pacing, the parked
// change listener) is refreshCycle; the header, tab bar, status bar and
// table are components drawn with View(width); the help, confirm, editor
// and curl dialogs are overlays that take every key while open.
//
// Config.Status, Config.Pause and Config.Clipboard are called from Cmd
// goroutines, so they must be safe for concurrent use. main should run
// the program with tea.WithAltScreen (Init also asks for it).
package ui
