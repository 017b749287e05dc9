package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
)

func TestAuthLead(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Now = fixedClock()
	now := cfg.Now()
	_, srv := startSandbox(t, cfg)
	secret := []byte(TestHMACSecret)

	tests := []struct {
		name     string
		mutate   func(r *http.Request, body []byte)
		wantCode int
		wantErr  string // "" for an acceptance
	}{
		{"NoAuthorization", func(r *http.Request, _ []byte) { r.Header.Del("Authorization") }, 401, crm.ErrCodeUnauthorized},
		{"WrongKey", func(r *http.Request, _ []byte) { r.Header.Set("Authorization", "Bearer nope") }, 401, crm.ErrCodeUnauthorized},
		{"BasicScheme", func(r *http.Request, _ []byte) { r.Header.Set("Authorization", "Basic "+TestAPIKey) }, 401, crm.ErrCodeUnauthorized},
		{"KeyPrefixOnly", func(r *http.Request, _ []byte) { r.Header.Set("Authorization", "Bearer test-api") }, 401, crm.ErrCodeUnauthorized},
		{"WrongKeyAndBadSignatureIsUnauthorized", func(r *http.Request, _ []byte) {
			r.Header.Set("Authorization", "Bearer nope")
			r.Header.Set(crm.HeaderSignature, "sha256=00")
		}, 401, crm.ErrCodeUnauthorized},
		{"NoTimestamp", func(r *http.Request, _ []byte) { r.Header.Del(crm.HeaderTimestamp) }, 401, crm.ErrCodeTimestampRange},
		{"TimestampNotInteger", func(r *http.Request, _ []byte) { r.Header.Set(crm.HeaderTimestamp, "soon") }, 401, crm.ErrCodeTimestampRange},
		{"TimestampStale", func(r *http.Request, _ []byte) { setTS(r, now.Add(-301*time.Second)) }, 401, crm.ErrCodeTimestampRange},
		{"TimestampFuture", func(r *http.Request, _ []byte) { setTS(r, now.Add(301*time.Second)) }, 401, crm.ErrCodeTimestampRange},
		{"StaleTimestampAndBadSignatureIsTimestamp", func(r *http.Request, _ []byte) {
			setTS(r, now.Add(-time.Hour))
			r.Header.Set(crm.HeaderSignature, "sha256=00")
		}, 401, crm.ErrCodeTimestampRange},
		{"NoSignature", func(r *http.Request, _ []byte) { r.Header.Del(crm.HeaderSignature) }, 403, crm.ErrCodeBadSignature},
		{"WrongSecret", func(r *http.Request, body []byte) {
			r.Header.Set(crm.HeaderSignature, crm.Sign([]byte("other"), body))
		}, 403, crm.ErrCodeBadSignature},
		{"SignatureOverOtherBody", func(r *http.Request, body []byte) {
			r.Header.Set(crm.HeaderSignature, crm.Sign(secret, append([]byte(" "), body...)))
		}, 403, crm.ErrCodeBadSignature},
		{"SignatureNotHex", func(r *http.Request, _ []byte) { r.Header.Set(crm.HeaderSignature, "sha256=zz") }, 403, crm.ErrCodeBadSignature},
		// Accepted variants: the 300 s edge, the digest as bare or
		// upper-case hex (the protocol allows both), a lower-case scheme.
		{"TimestampAtEdge", func(r *http.Request, _ []byte) { setTS(r, now.Add(-300*time.Second)) }, 200, ""},
		{"BareHex", func(r *http.Request, body []byte) {
			r.Header.Set(crm.HeaderSignature, crm.Digest(secret, body))
		}, 200, ""},
		{"UpperCaseHex", func(r *http.Request, body []byte) {
			r.Header.Set(crm.HeaderSignature, "sha256="+strings.ToUpper(crm.Digest(secret, body)))
		}, 200, ""},
		{"LowerCaseBearer", func(r *http.Request, _ []byte) { r.Header.Set("Authorization", "bearer "+TestAPIKey) }, 200, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := leadJSON(fmt.Sprintf("auth-%d", i), fmt.Sprintf("+3805012345%02d", i), nil)
			req := leadRequest(t, srv.URL, body, fmt.Sprintf("auth-key-%d", i), now)
			tt.mutate(req, body)
			a := mustSend(t, timeoutClient(), req)
			if a.code != tt.wantCode {
				t.Fatalf("answer %s, want code %d", a, tt.wantCode)
			}
			if tt.wantErr != "" {
				if got := errCode(t, a); got != tt.wantErr {
					t.Fatalf("error %q, want %q", got, tt.wantErr)
				}
				return
			}
			if r := leadResp(t, a); r.Status != crm.StatusAccepted {
				t.Fatalf("answer %s, want accepted", a)
			}
		})
	}
}

func setTS(r *http.Request, ts time.Time) {
	r.Header.Set(crm.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
}

func TestAuthStatus(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Now = fixedClock()
	now := cfg.Now()
	_, srv := startSandbox(t, cfg)
	if a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, leadJSON("st-1", "+4915112345678", nil), "k", now)); a.code != 200 {
		t.Fatalf("submit: %s", a)
	}
	tests := []struct {
		name     string
		mutate   func(r *http.Request)
		wantCode int
		wantErr  string
	}{
		{"Good", func(r *http.Request) {}, 200, ""},
		{"NoAuthorization", func(r *http.Request) { r.Header.Del("Authorization") }, 401, crm.ErrCodeUnauthorized},
		{"TimestampStale", func(r *http.Request) { setTS(r, now.Add(-10*time.Minute)) }, 401, crm.ErrCodeTimestampRange},
		{"NoSignature", func(r *http.Request) { r.Header.Del(crm.HeaderSignature) }, 403, crm.ErrCodeBadSignature},
		{"SignedOverNonEmptyBody", func(r *http.Request) {
			r.Header.Set(crm.HeaderSignature, crm.Sign([]byte(TestHMACSecret), []byte("{}")))
		}, 403, crm.ErrCodeBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := statusRequest(t, srv.URL, "st-1", now)
			tt.mutate(req)
			a := mustSend(t, timeoutClient(), req)
			if a.code != tt.wantCode {
				t.Fatalf("answer %s, want code %d", a, tt.wantCode)
			}
			if tt.wantErr != "" {
				if got := errCode(t, a); got != tt.wantErr {
					t.Fatalf("error %q, want %q", got, tt.wantErr)
				}
			}
		})
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := startSandbox(t, cfg)
	now := time.Now()
	good := leadJSON("req-1", "+380501234567", nil)

	tests := []struct {
		name     string
		req      func() *http.Request
		wantCode int
		wantErr  string
	}{
		{"NoIdempotencyKey", func() *http.Request { return leadRequest(t, srv.URL, good, "", now) }, 400, crm.ErrCodeMissingIdempotency},
		{"IdempotencyKeyTooLong", func() *http.Request {
			return leadRequest(t, srv.URL, good, strings.Repeat("k", MaxIdempotencyKeyLen+1), now)
		}, 400, crm.ErrCodeMissingIdempotency},
		{"NotJSON", func() *http.Request { return leadRequest(t, srv.URL, []byte("external_id=1"), "bad-1", now) }, 400, crm.ErrCodeInvalidJSON},
		{"JSONArray", func() *http.Request { return leadRequest(t, srv.URL, []byte(`[{"external_id":"x"}]`), "bad-2", now) }, 400, crm.ErrCodeInvalidJSON},
		{"TwoObjects", func() *http.Request { return leadRequest(t, srv.URL, []byte(`{} {}`), "bad-3", now) }, 400, crm.ErrCodeInvalidJSON},
		{"TruncatedObject", func() *http.Request { return leadRequest(t, srv.URL, []byte(`{"external_id":`), "bad-4", now) }, 400, crm.ErrCodeInvalidJSON},
		{"BodyTooLarge", func() *http.Request {
			big := leadJSON("big", "+380501234567", map[string]any{"pad": strings.Repeat("x", MaxBodyBytes)})
			return leadRequest(t, srv.URL, big, "bad-5", now)
		}, 413, crm.CodeBodyTooLarge},
		{"LeadsGet", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL+crm.PathLeads, nil)
			return r
		}, 405, crm.CodeMethodNotAllowed},
		{"StatusPost", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, srv.URL+crm.StatusPath("x"), nil)
			return r
		}, 405, crm.CodeMethodNotAllowed},
		{"UnknownPath", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/other", nil)
			return r
		}, 404, crm.ErrCodeNotFound},
		{"EmptyStatusID", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL+crm.PathLeads+"//status", nil)
			return r
		}, 404, crm.ErrCodeNotFound},
		{"StatusWithoutID", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL+crm.PathLeads+"/status", nil)
			return r
		}, 404, crm.ErrCodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustSend(t, timeoutClient(), tt.req())
			if a.code != tt.wantCode {
				t.Fatalf("answer %s, want code %d", a, tt.wantCode)
			}
			if got := errCode(t, a); got != tt.wantErr {
				t.Fatalf("error %q, want %q", got, tt.wantErr)
			}
		})
	}

	// Request errors are not stored under the key: the same key with a
	// good body is then processed.
	t.Run("NotStored", func(t *testing.T) {
		a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, good, "bad-1", now))
		if r := leadResp(t, a); a.code != 200 || r.Status != crm.StatusAccepted || r.Replay {
			t.Fatalf("answer %s, want a fresh accepted", a)
		}
	})
	if st := sb.Stats(); st.BadRequests < 6 {
		t.Errorf("bad_requests = %d, want at least 6", st.BadRequests)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	_, srv := startSandbox(t, testConfig())
	now := time.Now()

	tests := []struct {
		name       string
		body       string
		wantReason string // "" means accepted
	}{
		{"ExternalIDMissing", `{"phone":"+380501234567"}`, "external_id: required"},
		{"ExternalIDNull", `{"external_id":null,"phone":"+380501234567"}`, "external_id: required"},
		{"ExternalIDEmpty", `{"external_id":"","phone":"+380501234567"}`, "external_id: required"},
		{"ExternalIDNumber", `{"external_id":42,"phone":"+380501234567"}`, "external_id: must be a string"},
		{"ExternalIDTooLong", `{"external_id":"` + strings.Repeat("a", 129) + `","phone":"+380501234567"}`, "external_id: longer than 128 characters"},
		{"ExternalID128Runes", `{"external_id":"` + strings.Repeat("ж", 128) + `","phone":"+380501234500"}`, ""},
		{"PhoneMissing", `{"external_id":"v-1"}`, "phone: required"},
		{"PhoneNoPlus", `{"external_id":"v-2","phone":"380501234567"}`, "phone: not E.164 (+ and 8 to 15 digits)"},
		{"PhoneSevenDigits", `{"external_id":"v-3","phone":"+1234567"}`, "phone: not E.164 (+ and 8 to 15 digits)"},
		{"PhoneSixteenDigits", `{"external_id":"v-4","phone":"+1234567890123456"}`, "phone: not E.164 (+ and 8 to 15 digits)"},
		{"PhoneSpaces", `{"external_id":"v-5","phone":"+380 50 123 45 67"}`, "phone: not E.164 (+ and 8 to 15 digits)"},
		{"PhoneLetters", `{"external_id":"v-6","phone":"+38050123456a"}`, "phone: not E.164 (+ and 8 to 15 digits)"},
		{"PhoneNumber", `{"external_id":"v-7","phone":380501234567}`, "phone: must be a string"},
		{"PhoneEightDigits", `{"external_id":"v-8","phone":"+12345678"}`, ""},
		{"PhoneFifteenDigits", `{"external_id":"v-9","phone":"+123456789012345"}`, ""},
		{"EmailNoAt", `{"external_id":"v-10","phone":"+380501234510","email":"bob.example.com"}`, "email: not an email address"},
		{"EmailNoDomainDot", `{"external_id":"v-11","phone":"+380501234511","email":"bob@localhost"}`, "email: not an email address"},
		{"EmailTwoAts", `{"external_id":"v-12","phone":"+380501234512","email":"a@b@c.io"}`, "email: not an email address"},
		{"EmailDisplayName", `{"external_id":"v-13","phone":"+380501234513","email":"Bob <bob@x.io>"}`, "email: not an email address"},
		{"EmailEmptyLabel", `{"external_id":"v-14","phone":"+380501234514","email":"bob@x..io"}`, "email: not an email address"},
		{"EmailNotString", `{"external_id":"v-15","phone":"+380501234515","email":true}`, "email: must be a string"},
		{"EmailGood", `{"external_id":"v-16","phone":"+380501234516","email":"bob.smith+tag@mail.example.co.uk"}`, ""},
		{"EmailNull", `{"external_id":"v-17","phone":"+380501234517","email":null}`, ""},
		{"CountryUnknown", `{"external_id":"v-18","phone":"+380501234518","country":"XX"}`, "country: not an ISO 3166-1 alpha-2 code"},
		{"CountryName", `{"external_id":"v-19","phone":"+380501234519","country":"Germany"}`, "country: not an ISO 3166-1 alpha-2 code"},
		{"CountryAlpha3", `{"external_id":"v-20","phone":"+380501234520","country":"DEU"}`, "country: not an ISO 3166-1 alpha-2 code"},
		{"CountryKosovo", `{"external_id":"v-21","phone":"+380501234521","country":"XK"}`, "country: not an ISO 3166-1 alpha-2 code"},
		{"CountryNotString", `{"external_id":"v-22","phone":"+380501234522","country":49}`, "country: must be a string"},
		{"CountryGood", `{"external_id":"v-23","phone":"+380501234523","country":"DE"}`, ""},
		{"CountryLowerCase", `{"external_id":"v-24","phone":"+380501234524","country":"ua"}`, ""},
		{"ExtraFieldsKept", `{"external_id":"v-25","phone":"+380501234525","funnel":{"step":2},"sub_id":7}`, ""},
		{"FirstFailureWins", `{"phone":"bad","email":"bad"}`, "external_id: required"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, []byte(tt.body), fmt.Sprintf("val-%d", i), now))
			r := leadResp(t, a)
			if tt.wantReason == "" {
				if a.code != 200 || r.Status != crm.StatusAccepted {
					t.Fatalf("answer %s, want accepted", a)
				}
				return
			}
			if a.code != http.StatusUnprocessableEntity || r.Status != crm.StatusValidationError || r.ID != nil {
				t.Fatalf("answer %s, want 422 validation_error with id null", a)
			}
			if got := deref(r.Reason); got != tt.wantReason {
				t.Fatalf("reason %q, want %q", got, tt.wantReason)
			}
		})
	}
}

func TestAcceptedAnswer(t *testing.T) {
	t.Parallel()
	sb, srv := startSandbox(t, testConfig())
	a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, leadJSON("acc-1", "+380501234567", nil), "acc-key", time.Now()))
	if a.code != 200 {
		t.Fatalf("answer %s", a)
	}
	// The raw JSON, not only the decoded struct: reason must be an
	// explicit null and replay absent on a first answer.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["reason"]) != "null" || string(raw["status"]) != `"accepted"` {
		t.Errorf("body %s: want status accepted and reason null", a.body)
	}
	if _, ok := raw["replay"]; ok {
		t.Errorf("body %s: replay on a first answer", a.body)
	}
	r := leadResp(t, a)
	if r.ID == nil || *r.ID == "" || r.DurationMS == nil || *r.DurationMS < 0 {
		t.Errorf("answer %s: want an id and duration_ms", a)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if st := sb.Stats(); st.Accepted != 1 || st.Leads != 1 || st.LeadsCreatedPerExternalIDMax != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	sb, srv := startSandbox(t, testConfig())
	now := time.Now()
	c := timeoutClient()

	first := func(t *testing.T, body []byte, key string) answer {
		t.Helper()
		a := mustSend(t, c, leadRequest(t, srv.URL, body, key, now))
		if leadResp(t, a).Replay {
			t.Fatalf("first answer %s is a replay", a)
		}
		return a
	}
	// assertReplay checks the answer is the stored one with replay true:
	// same code, and the same body once "replay" is taken out.
	assertReplay := func(t *testing.T, stored, got answer) {
		t.Helper()
		if got.code != stored.code {
			t.Fatalf("replay code %d, stored %d", got.code, stored.code)
		}
		var s, g map[string]any
		_ = json.Unmarshal(stored.body, &s)
		_ = json.Unmarshal(got.body, &g)
		if g["replay"] != true {
			t.Fatalf("replay %s lacks \"replay\":true", got)
		}
		delete(g, "replay")
		sj, _ := json.Marshal(s)
		gj, _ := json.Marshal(g)
		if !bytes.Equal(sj, gj) {
			t.Fatalf("replay %s differs from stored %s", gj, sj)
		}
	}

	t.Run("ReplayAccepted", func(t *testing.T) {
		body := leadJSON("idem-1", "+380501110001", nil)
		stored := first(t, body, "idem-key-1")
		for range 2 {
			assertReplay(t, stored, mustSend(t, c, leadRequest(t, srv.URL, body, "idem-key-1", now)))
		}
	})
	t.Run("ReplayValidationError", func(t *testing.T) {
		body := leadJSON("idem-2", "not-a-phone", nil)
		stored := first(t, body, "idem-key-2")
		assertReplay(t, stored, mustSend(t, c, leadRequest(t, srv.URL, body, "idem-key-2", now)))
	})
	t.Run("ReplayDuplicate", func(t *testing.T) {
		body := leadJSON("idem-1", "+380501110001", nil)
		stored := first(t, body, "idem-key-3")
		if stored.code != http.StatusConflict {
			t.Fatalf("answer %s, want 409 duplicate", stored)
		}
		assertReplay(t, stored, mustSend(t, c, leadRequest(t, srv.URL, body, "idem-key-3", now)))
	})
	t.Run("KeyReused", func(t *testing.T) {
		first(t, leadJSON("idem-4", "+380501110004", nil), "idem-key-4")
		a := mustSend(t, c, leadRequest(t, srv.URL, leadJSON("idem-4", "+380501110005", nil), "idem-key-4", now))
		if a.code != http.StatusUnprocessableEntity || errCode(t, a) != crm.ErrCodeKeyReused {
			t.Fatalf("answer %s, want 422 idempotency_key_reused", a)
		}
	})
	t.Run("SameLeadOtherBytesIsReuse", func(t *testing.T) {
		// The key binds the bytes, not the meaning: a re-serialised
		// body with the same fields is a different request.
		first(t, []byte(`{"external_id":"idem-6","phone":"+380501110006"}`), "idem-key-6")
		a := mustSend(t, c, leadRequest(t, srv.URL, []byte(`{"phone":"+380501110006","external_id":"idem-6"}`), "idem-key-6", now))
		if a.code != http.StatusUnprocessableEntity || errCode(t, a) != crm.ErrCodeKeyReused {
			t.Fatalf("answer %s, want 422 idempotency_key_reused", a)
		}
	})
	st := sb.Stats()
	if st.IdempotentReplays != 4 || st.KeyConflicts != 2 {
		t.Errorf("idempotent_replays %d (want 4), key_conflicts %d (want 2)", st.IdempotentReplays, st.KeyConflicts)
	}
}

func TestInProgress(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Latency = time.Second
	sb, srv := startSandbox(t, cfg)
	now := time.Now()
	body := leadJSON("slow-1", "+380501234567", nil)

	firstDone := make(chan answer, 1)
	go func() { firstDone <- send(timeoutClient(), leadRequest(t, srv.URL, body, "slow-key", now)) }()
	// The first request is in flight once it sits in its latency.
	poll.Until(t, "the first request to be in flight", func() bool { return sb.Stats().InFlight == 1 })

	t.Run("SameBody", func(t *testing.T) {
		a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, body, "slow-key", now))
		if a.code != http.StatusConflict || errCode(t, a) != crm.ErrCodeRequestInProgress {
			t.Fatalf("answer %s, want 409 request_in_progress", a)
		}
	})
	t.Run("OtherBody", func(t *testing.T) {
		a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, leadJSON("slow-2", "+380501234568", nil), "slow-key", now))
		if a.code != http.StatusUnprocessableEntity || errCode(t, a) != crm.ErrCodeKeyReused {
			t.Fatalf("answer %s, want 422 idempotency_key_reused", a)
		}
	})

	var a answer
	select {
	case a = <-firstDone:
	case <-time.After(waitTimeout):
		t.Fatal("first request never answered")
	}
	if r := leadResp(t, a); a.code != 200 || r.Status != crm.StatusAccepted || r.Replay {
		t.Fatalf("first answer %s, want accepted", a)
	}
	t.Run("AfterwardsReplay", func(t *testing.T) {
		a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, body, "slow-key", now))
		if r := leadResp(t, a); a.code != 200 || !r.Replay {
			t.Fatalf("answer %s, want the replay", a)
		}
	})
	if st := sb.Stats(); st.InProgressConflicts != 1 || st.KeyConflicts != 1 || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestDuplicate(t *testing.T) {
	t.Parallel()
	sb, srv := startSandbox(t, testConfig())
	now := time.Now()
	a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, leadJSON("dup-1", "+380501234567", nil), "dup-key-0", now))
	orig := leadResp(t, a)
	if orig.ID == nil {
		t.Fatalf("answer %s", a)
	}
	tests := []struct {
		name, body, wantReason string
	}{
		{"ByExternalID", string(leadJSON("dup-1", "+380509999999", nil)), "external_id_exists"},
		{"ByExternalIDSamePhone", string(leadJSON("dup-1", "+380501234567", nil)), "external_id_exists"},
		{"ByPhone", string(leadJSON("dup-2", "+380501234567", nil)), "phone_exists"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, []byte(tt.body), fmt.Sprintf("dup-key-%d", i+1), now))
			r := leadResp(t, a)
			if a.code != http.StatusConflict || r.Status != crm.StatusDuplicate {
				t.Fatalf("answer %s, want 409 duplicate", a)
			}
			if deref(r.ID) != *orig.ID || deref(r.Reason) != tt.wantReason {
				t.Fatalf("id %s reason %s, want %s %s", deref(r.ID), deref(r.Reason), *orig.ID, tt.wantReason)
			}
		})
	}
	if st := sb.Stats(); st.Duplicates != 3 || st.Leads != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestGeoRejected(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.BlockCountries = []string{"US", "kp"}
	sb, srv := startSandbox(t, cfg)
	now := time.Now()
	tests := []struct {
		name, country string
		rejected      bool
	}{
		{"Blocked", "US", true},
		{"BlockedLowerCaseLead", "us", true},
		{"BlockedLowerCaseList", "KP", true},
		{"Allowed", "DE", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := leadJSON(fmt.Sprintf("geo-%d", i), fmt.Sprintf("+38050123450%d", i), map[string]any{"country": tt.country})
			a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, body, fmt.Sprintf("geo-key-%d", i), now))
			r := leadResp(t, a)
			if !tt.rejected {
				if r.Status != crm.StatusAccepted {
					t.Fatalf("answer %s, want accepted", a)
				}
				return
			}
			if a.code != 200 || r.Status != crm.StatusRejected || deref(r.Reason) != "geo_not_allowed" || r.ID != nil {
				t.Fatalf("answer %s, want 200 rejected geo_not_allowed with id null", a)
			}
		})
	}
	// A rejected lead is not stored: it is unknown to the status endpoint.
	if a := mustSend(t, timeoutClient(), statusRequest(t, srv.URL, "geo-0", now)); a.code != 404 {
		t.Errorf("status of a rejected lead: %s, want 404", a)
	}
	if st := sb.Stats(); st.Rejected != 3 || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.StatusDelay = time.Hour // the lead stays "new"
	cfg.Now = fixedClock()
	now := cfg.Now()
	_, srv := startSandbox(t, cfg)

	ids := []struct{ name, id string }{
		{"Plain", "lead-42"},
		{"Slash", "camp/2026/lead 1"},
		{"QueryChars", "what?x=1&y=2#frag"},
		{"Percent", "100%-sure%2F"},
		{"Unicode", "лид-№1-🚀"},
		{"Dot", "."},
		{"DotDot", ".."},
		{"Plus", "a+b c"},
	}
	crmIDs := make(map[string]string)
	for i, tc := range ids {
		a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, leadJSON(tc.id, fmt.Sprintf("+3805012345%02d", i), nil), "st-key-"+strconv.Itoa(i), now))
		r := leadResp(t, a)
		if r.Status != crm.StatusAccepted {
			t.Fatalf("submit %q: %s", tc.id, a)
		}
		crmIDs[tc.id] = *r.ID
	}
	for _, tc := range ids {
		t.Run("Known"+tc.name, func(t *testing.T) {
			a := mustSend(t, timeoutClient(), statusRequest(t, srv.URL, tc.id, now))
			if a.code != 200 {
				t.Fatalf("answer %s", a)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(a.body, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"external_id", "id", "status", "reason", "updated_at"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("answer %s lacks %q", a, k)
				}
			}
			var r crm.StatusResponse
			if err := json.Unmarshal(a.body, &r); err != nil {
				t.Fatal(err)
			}
			if r.ExternalID != tc.id || r.ID != crmIDs[tc.id] || r.Status != StatusNew || r.Reason != nil {
				t.Errorf("answer %+v, want %q %q new", r, tc.id, crmIDs[tc.id])
			}
			if !r.UpdatedAt.Equal(now) {
				t.Errorf("updated_at %s, want %s", r.UpdatedAt, now)
			}
		})
	}
	t.Run("Unknown", func(t *testing.T) {
		a := mustSend(t, timeoutClient(), statusRequest(t, srv.URL, "no-such-lead", now))
		if a.code != 404 || errCode(t, a) != crm.ErrCodeNotFound {
			t.Fatalf("answer %s, want 404 not_found", a)
		}
	})
	t.Run("UnknownNearMiss", func(t *testing.T) {
		// "camp/2026" is a prefix of the known "camp/2026/lead 1": ids
		// match exactly, never by prefix or path segment.
		a := mustSend(t, timeoutClient(), statusRequest(t, srv.URL, "camp/2026", now))
		if a.code != 404 {
			t.Fatalf("answer %s, want 404", a)
		}
	})
}

func TestStatsEndpoint(t *testing.T) {
	t.Parallel()
	sb, srv := startSandbox(t, testConfig())
	mustSend(t, timeoutClient(), leadRequest(t, srv.URL, leadJSON("stats-1", "+380501234567", nil), "s-1", time.Now()))

	t.Run("Loopback", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+PathStats, nil)
		a := mustSend(t, timeoutClient(), req)
		if a.code != 200 {
			t.Fatalf("answer %s", a)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(a.body, &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{
			"requests", "accepted", "duplicates", "validation_errors", "rejected", "idempotent_replays",
			"key_conflicts", "in_progress_conflicts", "faults_503", "faults_429", "faults_dropped",
			"callbacks_sent", "callbacks_delivered", "callbacks_redelivered", "callbacks_failed",
			"leads_created_per_external_id_max",
		} {
			if _, ok := raw[k]; !ok {
				t.Errorf("stats lack %q", k)
			}
		}
		var st Stats
		if err := json.Unmarshal(a.body, &st); err != nil {
			t.Fatal(err)
		}
		if st.Requests != 1 || st.Accepted != 1 || st.LeadsCreatedPerExternalIDMax != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	tests := []struct {
		name, remote string
		want         int
	}{
		{"IPv4Loopback", "127.0.0.1:5555", 200},
		{"IPv4LoopbackRange", "127.8.9.10:5555", 200},
		{"IPv6Loopback", "[::1]:5555", 200},
		{"IPv4MappedLoopback", "[::ffff:127.0.0.1]:5555", 200},
		{"Private", "192.168.1.20:5555", 403},
		{"Public", "203.0.113.7:5555", 403},
		{"IPv6Public", "[2001:db8::1]:5555", 403},
		{"Garbage", "not-an-address", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The remote address cannot be chosen on a real
			// connection, so these go to the handler directly.
			req := httptest.NewRequest(http.MethodGet, PathStats, nil)
			req.RemoteAddr = tt.remote
			rec := httptest.NewRecorder()
			sb.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("code %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
		})
	}
}

// noKeepAlive is a client whose every request gets its own connection, so
// a dropped connection is seen as such, never retried by the transport on
// another.
func noKeepAlive() *http.Client {
	return &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

// outcome names an answer for fault sequences: the code, or "drop".
func outcome(a answer) string {
	if a.err != nil {
		return "drop"
	}
	return strconv.Itoa(a.code)
}

func TestFaultDeterminism(t *testing.T) {
	t.Parallel()
	run := func(seed int64) []string {
		cfg := testConfig()
		cfg.Seed = seed
		cfg.FailRate, cfg.ThrottleRate, cfg.DropRate = 0.25, 0.25, 0.15
		_, srv := startSandbox(t, cfg)
		c := noKeepAlive()
		var seq []string
		for i := range 40 {
			body := leadJSON(fmt.Sprintf("det-%d", i), fmt.Sprintf("+3805000000%02d", i), nil)
			a := send(c, leadRequest(t, srv.URL, body, fmt.Sprintf("det-key-%d", i), time.Now()))
			seq = append(seq, outcome(a))
		}
		return seq
	}
	a, b, other := run(7), run(7), run(8)
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	if strings.Join(a, " ") == strings.Join(other, " ") {
		t.Errorf("seeds 7 and 8 gave the same 40 outcomes: %v", a)
	}
	count := make(map[string]int)
	for _, o := range a {
		count[o]++
	}
	for _, o := range []string{"200", "503", "429", "drop"} {
		if count[o] == 0 {
			t.Errorf("no %s in %v", o, a)
		}
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		configure func(c *Config)
		want      string // the fault's outcome
		check     func(t *testing.T, a answer)
		counter   func(st Stats) int64
	}{
		{"Fail503", func(c *Config) { c.FailRate = 0.8 }, "503", func(t *testing.T, a answer) {
			if errCode(t, a) != crm.CodeUnavailable {
				t.Errorf("503 answer %s", a)
			}
		}, func(st Stats) int64 { return st.Faults503 }},
		{"Throttle429", func(c *Config) { c.ThrottleRate = 0.8; c.RetryAfter = 1500 * time.Millisecond }, "429", func(t *testing.T, a answer) {
			if got := a.header.Get("Retry-After"); got != "2" {
				t.Errorf("Retry-After %q, want 2 (1.5 s rounded up)", got)
			}
		}, func(st Stats) int64 { return st.Faults429 }},
		{"Drop", func(c *Config) { c.DropRate = 0.8 }, "drop", nil, func(st Stats) int64 { return st.FaultsDropped }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Seed = 1 // its first draws are faults at a rate of 0.8
			tt.configure(&cfg)
			sb, srv := startSandbox(t, cfg)
			c := noKeepAlive()
			body := leadJSON("fault-1", "+380501234567", nil)
			// The same request, same key, until it gets through: the
			// faults before must not have stored anything, so the
			// first real answer is a fresh acceptance, and the next a
			// replay of it.
			var faults int
			var got []string
			var accepted crm.LeadResponse
			for len(got) < 100 {
				a := send(c, leadRequest(t, srv.URL, body, "fault-key", time.Now()))
				got = append(got, outcome(a))
				if outcome(a) == tt.want {
					faults++
					if tt.check != nil {
						tt.check(t, a)
					}
					continue
				}
				if a.code != 200 {
					t.Fatalf("answer %s after %v", a, got)
				}
				accepted = leadResp(t, a)
				break
			}
			if faults == 0 {
				t.Fatalf("seed gave no fault before the answer: %v", got)
			}
			if accepted.Status != crm.StatusAccepted || accepted.Replay {
				t.Fatalf("first real answer %+v after %v, want a fresh accepted", accepted, got)
			}
			for {
				a := send(c, leadRequest(t, srv.URL, body, "fault-key", time.Now()))
				if outcome(a) == tt.want {
					continue
				}
				if r := leadResp(t, a); !r.Replay || deref(r.ID) != deref(accepted.ID) {
					t.Fatalf("answer %s, want the replay of %s", a, deref(accepted.ID))
				}
				break
			}
			st := sb.Stats()
			if tt.counter(st) < int64(faults) || st.Accepted != 1 || st.LeadsCreatedPerExternalIDMax != 1 {
				t.Errorf("stats %+v after %d faults", st, faults)
			}
		})
	}
}

func TestFaultsOnStatus(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.FailRate = 1
	_, srv := startSandbox(t, cfg)
	a := mustSend(t, timeoutClient(), statusRequest(t, srv.URL, "x", time.Now()))
	if a.code != 503 {
		t.Fatalf("answer %s, want 503", a)
	}
}

func TestNoLeadCreatedTwice(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.StatusDelay = time.Hour
	sb, srv := startSandbox(t, cfg)
	now := time.Now()
	body := leadJSON("race-1", "+380501234567", nil)

	const n = 48
	var wg sync.WaitGroup
	answers := make([]answer, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			// A third share with one shared key, the rest with keys of
			// their own, as several senders of one lead would.
			key := "race-shared"
			if i%3 != 0 {
				key = fmt.Sprintf("race-%d", i)
			}
			answers[i] = send(timeoutClient(), leadRequest(t, srv.URL, body, key, now))
		})
	}
	close(start)
	wg.Wait()

	var ids []string
	fresh := 0
	for _, a := range answers {
		if a.err != nil {
			t.Fatalf("transport error: %v", a.err)
		}
		if a.code == http.StatusConflict && bytes.Contains(a.body, []byte(crm.ErrCodeRequestInProgress)) {
			continue
		}
		r := leadResp(t, a)
		if r.Status == crm.StatusAccepted && !r.Replay {
			fresh++
		}
		ids = append(ids, deref(r.ID))
	}
	if fresh != 1 {
		t.Errorf("%d fresh acceptances, want 1", fresh)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Errorf("answers name ids %v, want one", ids)
			break
		}
	}
	if st := sb.Stats(); st.Accepted != 1 || st.Leads != 1 || st.LeadsCreatedPerExternalIDMax != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestClosedAnswers503(t *testing.T) {
	t.Parallel()
	sb, srv := startSandbox(t, testConfig())
	sb.Close()
	a := mustSend(t, timeoutClient(), leadRequest(t, srv.URL, leadJSON("closed", "+380501234567", nil), "closed", time.Now()))
	if a.code != 503 {
		t.Fatalf("answer %s, want 503", a)
	}
	if st := sb.Stats(); st.Accepted != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestCloseDuringLatency(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Latency = time.Hour
	sb, srv := startSandbox(t, cfg)
	done := make(chan answer, 1)
	go func() {
		done <- send(timeoutClient(), leadRequest(t, srv.URL, leadJSON("late", "+380501234567", nil), "late", time.Now()))
	}()
	poll.Until(t, "the request to be in flight", func() bool { return sb.Stats().InFlight == 1 })
	sb.Close()
	select {
	case a := <-done:
		if a.code != 503 || errCode(t, a) != crm.CodeUnavailable {
			t.Fatalf("answer %s, want 503 unavailable", a)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not cut the latency short")
	}
	if st := sb.Stats(); st.Accepted != 0 || st.Leads != 0 {
		t.Errorf("stats %+v", st)
	}
}
