package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/leadwatch/leadwatch/crm"
)

// Lead statuses of the sandbox's lifecycle, as the status endpoint and the
// callbacks report them.
const (
	StatusNew           = "new"
	StatusNoAnswer      = "no_answer"
	StatusCallback      = "callback"
	StatusInterested    = "interested"
	StatusFTD           = "ftd" // first-time deposit: the campaign's goal
	StatusNotInterested = "not_interested"
)

// EventStatusChanged is the event of every callback the sandbox sends.
const EventStatusChanged = "status_changed"

// ReasonDeclined is the reason given with not_interested.
const ReasonDeclined = "declined_on_call"

// StaleBy is how far in the past a stale-timestamp fault puts X-Timestamp:
// twice the protocol's 300 s window, so it is out of range without doubt.
const StaleBy = 2 * crm.DefaultTolerance

// wrongSecretPrefix turns the callback secret into a wrong one for the
// bad-signature fault; derived, not constant, so it can never equal the
// real secret.
const wrongSecretPrefix = "not-the-callback-secret:"

// delivery is one callback body and the faults drawn for it.
type delivery struct {
	body   []byte
	id     string // the lead's CRM id and status, for logs only
	status string
	dup    bool // deliver a second time after success
	badSig bool // first attempt signed with a wrong secret
	stale  bool // first attempt with X-Timestamp StaleBy in the past
}

// createLocked stores an accepted lead as "new" and starts its lifecycle.
// The caller holds s.mu and has ruled out duplicates.
func (s *Sandbox) createLocked(v validLead) *lead {
	s.seq++
	seq := s.seq
	now := s.cfg.Now()
	l := &lead{
		crmID:      fmt.Sprintf("crm_%08d", seq),
		externalID: v.ExternalID,
		phone:      v.Phone,
		status:     StatusNew,
		updatedAt:  time.Unix(now.Unix(), 0).UTC(),
		lastTS:     now.Unix(),
	}
	s.byExternal[l.externalID] = l
	s.byPhone[l.phone] = l
	s.created[l.externalID]++
	s.createdMax = max(s.createdMax, s.created[l.externalID])
	s.n.statusChanges.Add(1)
	first := s.callbackBody(l)
	// Each lead has its own source, seeded by the sandbox seed and its
	// number, so its path and callback faults do not depend on how the
	// goroutines of other leads interleave.
	rng := rand.New(rand.NewPCG(uint64(s.cfg.Seed), seq))
	s.goLocked(func() { s.walk(l, rng, first) })
	s.log.Debug("sandbox: lead accepted", "external_id", l.externalID, "id", l.crmID)
	return l
}

// plan picks the statuses after "new": one middle status, then a final one
// whose odds depend on it.
func plan(rng *rand.Rand) [2]string {
	mid := [...]string{StatusNoAnswer, StatusCallback, StatusInterested}[rng.IntN(3)]
	ftdOdds := map[string]float64{StatusNoAnswer: 0.2, StatusCallback: 0.4, StatusInterested: 0.7}[mid]
	final := StatusNotInterested
	if rng.Float64() < ftdOdds {
		final = StatusFTD
	}
	return [2]string{mid, final}
}

// walk runs one lead's lifecycle: it announces "new" (already stored), then
// applies each planned status StatusDelay apart and announces it.
func (s *Sandbox) walk(l *lead, rng *rand.Rand, first []byte) {
	steps := plan(rng)
	var held *delivery
	held = s.announce(l.crmID, StatusNew, first, rng, true, held)
	for i, status := range steps {
		if !s.sleep(s.cfg.StatusDelay) {
			return
		}
		reason := ""
		if status == StatusNotInterested {
			reason = ReasonDeclined
		}
		body := s.setStatus(l, status, reason)
		held = s.announce(l.crmID, status, body, rng, i < len(steps)-1, held)
	}
}

// setStatus applies a change and returns its callback body.
func (s *Sandbox) setStatus(l *lead, status, reason string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := max(s.cfg.Now().Unix(), l.lastTS+1)
	l.status, l.reason, l.lastTS = status, reason, ts
	l.updatedAt = time.Unix(ts, 0).UTC()
	s.n.statusChanges.Add(1)
	return s.callbackBody(l)
}

// callbackBody marshals the lead's current status as a callback. The
// caller holds s.mu.
func (s *Sandbox) callbackBody(l *lead) []byte {
	b, _ := json.Marshal(crm.CallbackBody{
		InternalID: l.crmID,
		ExternalID: l.externalID,
		Event:      EventStatusChanged,
		Status:     l.status,
		Reason:     l.reason,
		Timestamp:  l.lastTS,
	})
	return b
}

// announce sends body as a callback, drawing its faults, and returns the
// delivery now held back, if any. A held (reordered) change goes out right
// after the next one, in one goroutine, so the later change really arrives
// first; only a change with a successor (canHold) can be held, and only one
// at a time.
func (s *Sandbox) announce(id, status string, body []byte, rng *rand.Rand, canHold bool, held *delivery) *delivery {
	if s.cfg.CallbackURL == "" {
		return nil
	}
	// Every draw is made whatever the rates, so a lead's sequence of
	// draws, and so its faults, depends only on the seed and its number.
	d := delivery{
		body:   body,
		id:     id,
		status: status,
		dup:    rng.Float64() < s.cfg.CallbackDupRate,
		badSig: rng.Float64() < s.cfg.CallbackBadSigRate,
		stale:  rng.Float64() < s.cfg.CallbackStaleRate,
	}
	reorder := rng.Float64() < s.cfg.CallbackReorderRate
	// The loss draw is made only when losses are on, so the faults of
	// every seed without them stay what they were.
	if s.cfg.CallbackLossRate > 0 && rng.Float64() < s.cfg.CallbackLossRate {
		s.n.cbLost.Add(1)
		if held != nil {
			s.spawn(func() { s.deliver(*held) })
		}
		return nil
	}
	if canHold && held == nil && reorder {
		s.n.cbReordered.Add(1)
		return &d
	}
	batch := []delivery{d}
	if held != nil {
		batch = append(batch, *held)
	}
	s.spawn(func() {
		for _, d := range batch {
			s.deliver(d)
		}
	})
	return nil
}

// deliver sends one callback until a 2xx answer, redelivering with
// doubling backoff after a non-2xx answer or a network error, at most
// CallbackAttempts times.
func (s *Sandbox) deliver(d delivery) {
	if d.badSig {
		s.n.cbBadSig.Add(1)
	}
	if d.stale {
		s.n.cbStale.Add(1)
	}
	backoff := s.cfg.CallbackBackoff
	for attempt := 1; attempt <= s.cfg.CallbackAttempts; attempt++ {
		if attempt > 1 {
			if !s.sleep(backoff) {
				s.n.cbFailed.Add(1)
				return
			}
			backoff = min(2*backoff, MaxCallbackBackoff)
			s.n.cbRedelivered.Add(1)
		}
		secret := s.cfg.CallbackSecret
		now := s.cfg.Now()
		// Faults spoil only the first attempt, so the redelivery the
		// listener's refusal causes is good and nothing is lost.
		if attempt == 1 && d.badSig {
			secret = append([]byte(wrongSecretPrefix), s.cfg.CallbackSecret...)
		}
		if attempt == 1 && d.stale {
			now = now.Add(-StaleBy)
		}
		if s.post(d.body, secret, now) {
			if d.dup {
				s.n.cbDuplicated.Add(1)
				s.post(d.body, s.cfg.CallbackSecret, s.cfg.Now())
			}
			return
		}
		if s.ctx.Err() != nil {
			break
		}
	}
	s.n.cbFailed.Add(1)
	s.log.Warn("sandbox: callback given up", "id", d.id, "status", d.status, "attempts", s.cfg.CallbackAttempts)
}

// post makes one callback POST and reports whether it was answered 2xx.
func (s *Sandbox) post(body, secret []byte, now time.Time) bool {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-s.ctx.Done():
		return false
	}
	req, err := crm.NewSignedCallback(s.cfg.CallbackURL, body, secret, now)
	if err != nil {
		s.log.Error("sandbox: build callback", "err", err)
		return false
	}
	s.n.cbSent.Add(1)
	resp, err := s.client.Do(req.WithContext(s.ctx))
	if err != nil {
		s.log.Debug("sandbox: callback not delivered", "err", err)
		return false
	}
	// Drain a little so the connection can be reused, never unboundedly.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.log.Debug("sandbox: callback refused", "http_status", resp.StatusCode)
		return false
	}
	s.n.cbDelivered.Add(1)
	return true
}
