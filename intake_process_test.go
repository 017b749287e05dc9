package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/crm/sandbox"
	"github.com/leadwatch/leadwatch/intake"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

const processIntakeToken = "intake-process-token-4c1f"

// intakeOutcome is what a client learned of one lead it posted.
type intakeOutcome int

const (
	outcomeUnknown  intakeOutcome = iota // no answer (connection lost) or 503
	outcomeAccepted                      // 202
	outcomeKnown                         // 409: already in the outbox
)

// postLeads posts leads to a running intake as one object (one lead) or
// an array, and returns each lead's outcome; a lost connection leaves
// every one unknown.
func postLeads(client *http.Client, url string, leads [][]byte) ([]intakeOutcome, error) {
	out := make([]intakeOutcome, len(leads))
	body := leads[0]
	if len(leads) > 1 {
		body = append(append([]byte("["), bytes.Join(leads, []byte(","))...), ']')
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Authorization", "Bearer "+processIntakeToken)
	resp, err := client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, err
	}
	one := func(status int) (intakeOutcome, error) {
		switch status {
		case http.StatusAccepted:
			return outcomeAccepted, nil
		case http.StatusConflict:
			return outcomeKnown, nil
		case http.StatusServiceUnavailable:
			return outcomeUnknown, nil
		}
		return outcomeUnknown, fmt.Errorf("answer %d: %s", status, raw)
	}
	if len(leads) == 1 {
		out[0], err = one(resp.StatusCode)
		return out, err
	}
	var ans struct {
		Results []struct {
			Status int `json:"status"`
		} `json:"results"`
	}
	if resp.StatusCode != http.StatusMultiStatus || json.Unmarshal(raw, &ans) != nil || len(ans.Results) != len(leads) {
		return out, fmt.Errorf("array answer %d: %s", resp.StatusCode, raw)
	}
	for i, r := range ans.Results {
		if out[i], err = one(r.Status); err != nil {
			return out, err
		}
	}
	return out, nil
}

// TestIntakeSurvivesKill9: `leadwatch serve` takes leads on its intake
// from 32 concurrent clients (single leads and arrays) and is killed with
// SIGKILL in the middle of the load, then restarted; the clients offer
// again every lead they got no answer for. Every lead answered 202 must
// be in the outbox after the kill, and in the end every lead is sent to
// the CRM exactly once, under one idempotency key.
func TestIntakeSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test in -short")
	}
	sb := sandbox.StartTest(t, sandbox.Config{Latency: time.Millisecond})
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "intake.db")
	cfgPath := filepath.Join(dir, "leadwatch.toml")
	if err := os.WriteFile(cfgPath, []byte(`
[crm]
timeout = "1s"
concurrency = 16
[retry]
max_attempts = 100
base_delay = "20ms"
max_delay = "200ms"
[callbacks]
drain = "0s"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"CARTELCRM_BASE_URL=" + sb.URL, "CARTELCRM_API_KEY=" + sandbox.TestAPIKey,
		"CARTELCRM_HMAC_SECRET=" + sandbox.TestHMACSecret, "CALLBACK_SECRET=" + sandbox.TestCallbackSecret}
	start := func(withToken bool) (*strings.Builder, func() error, string) {
		t.Helper()
		e := env
		if withToken {
			e = append(e[:len(e):len(e)], "LEADWATCH_INTAKE_TOKEN="+processIntakeToken)
		}
		cmd, stream, _ := startProcess(t, e, true, "serve", "--config", cfgPath, "--db", dbPath, "--listen", "127.0.0.1:0")
		m, logged := readUntil(t, stream, regexp.MustCompile(`leadwatch serving.* listen=(127\.0\.0\.1:\d+).* intake=(\S+)`), 15*time.Second)
		want := "off"
		if withToken {
			want = intake.Path
		}
		if m[2] != want {
			t.Fatalf("serve logs intake=%s, want %s", m[2], want)
		}
		var log strings.Builder
		log.WriteString(strings.Join(logged, ""))
		kill := func() error {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				return err
			}
			_ = cmd.Wait()
			return nil
		}
		t.Cleanup(func() { _ = kill() })
		return &log, kill, "http://" + m[1] + intake.Path
	}

	// Without a token the intake is off: its path is any unknown path.
	_, kill, url := start(false)
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"external_id":"off-1","phone":"+380501234567"}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || string(raw) != `{"error":"not_found"}` {
		t.Fatalf("intake off: %d %s", resp.StatusCode, raw)
	}
	if err := kill(); err != nil {
		t.Fatal(err)
	}

	const clients, perClient = 32, 80
	ids := make([][]string, clients)
	phone := map[string]string{} // unique: the CRM takes a repeated phone as a duplicate lead
	for c := range clients {
		for i := range perClient {
			id := fmt.Sprintf("ik-%02d-%03d", c, i)
			ids[c] = append(ids[c], id)
			phone[id] = fmt.Sprintf("+3805%08d", c*perClient+i)
		}
	}
	payload := func(id string) []byte {
		return []byte(fmt.Sprintf(`{"external_id":%q,"phone":%q,"country":"UA"}`, id, phone[id]))
	}
	var mu sync.Mutex
	outcome := map[string]intakeOutcome{}
	accepted := 0
	killAt := make(chan struct{})
	var killOnce sync.Once

	// run has every client offer its leads whose outcome is unknown, one
	// at a time or five in an array, until it has offered them all or its
	// connection is lost.
	run := func(url string) {
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 30 * time.Second}
				defer client.CloseIdleConnections()
				var todo []string
				mu.Lock()
				for _, id := range ids[c] {
					if outcome[id] == outcomeUnknown {
						todo = append(todo, id)
					}
				}
				mu.Unlock()
				for len(todo) > 0 {
					n := 1
					if len(todo)%4 == 0 {
						n = min(5, len(todo))
					}
					var leads [][]byte
					for _, id := range todo[:n] {
						leads = append(leads, payload(id))
					}
					got, err := postLeads(client, url, leads)
					mu.Lock()
					for i, id := range todo[:n] {
						if got[i] == outcomeAccepted && outcome[id] != outcomeUnknown {
							t.Errorf("%s answered 202 a second time", id)
						}
						if got[i] != outcomeUnknown {
							outcome[id] = got[i]
						}
						if got[i] == outcomeAccepted {
							accepted++
						}
					}
					if accepted >= clients*perClient/3 {
						killOnce.Do(func() { close(killAt) })
					}
					mu.Unlock()
					if err != nil {
						if !strings.Contains(err.Error(), "answer") {
							return // the process is gone: stop offering
						}
						t.Error(err)
						return
					}
					todo = todo[n:]
				}
			}()
		}
		wg.Wait()
	}

	log1, kill, url := start(true)
	loaded := make(chan struct{})
	go func() { run(url); close(loaded) }()
	// Kill once a third of the leads are in, the clients still posting.
	select {
	case <-killAt:
	case <-loaded:
		t.Fatal("the load ended before a third of the leads were accepted")
	}
	if err := kill(); err != nil {
		t.Fatal(err)
	}
	<-loaded
	noSecrets(t, log1.String())

	db := storetest.OpenPath(t, dbPath, store.Options{ReadOnly: true})
	mu.Lock()
	var acceptedIDs, unknown []string
	for _, cl := range ids {
		for _, id := range cl {
			switch outcome[id] {
			case outcomeAccepted:
				acceptedIDs = append(acceptedIDs, id)
			case outcomeUnknown:
				unknown = append(unknown, id)
			}
		}
	}
	mu.Unlock()
	if len(unknown) == 0 {
		t.Fatal("every lead was answered before the kill: the kill landed after the load")
	}
	states, err := db.States(context.Background(), acceptedIDs)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range acceptedIDs {
		if _, ok := states[id]; !ok {
			t.Errorf("%s was answered 202 but is not in the outbox after kill -9", id)
		}
	}
	before, err := db.States(context.Background(), unknown)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %d leads answered 202, %d unanswered (%d of them committed all the same)",
		len(acceptedIDs), len(unknown), len(before))

	// Restart: the clients offer again what they got no answer for. A lead
	// committed before the kill without its answer now comes back 409.
	log2, _, url := start(true)
	run(url)
	mu.Lock()
	for _, cl := range ids {
		for _, id := range cl {
			if outcome[id] == outcomeUnknown {
				t.Errorf("%s still has no answer after the restart", id)
			}
		}
	}
	known := 0
	for _, id := range unknown {
		if outcome[id] == outcomeKnown {
			known++
		}
	}
	mu.Unlock()
	if known != len(before) {
		t.Errorf("%d unanswered leads came back 409 after the restart, want the %d committed before the kill", known, len(before))
	}

	total := clients * perClient
	t.Cleanup(func() {
		if t.Failed() {
			c, err := db.Counts(context.Background())
			t.Logf("states at the end: %v (%v)", c.States, err)
		}
	})
	poll.UntilWithin(t, 90*time.Second, "every lead accepted by the CRM", func() bool {
		c, err := db.Counts(context.Background())
		return err == nil && c.States[crm.StateAccepted] == total
	})
	st := sb.Sandbox.Stats()
	if st.Accepted != int64(total) || st.LeadsCreatedPerExternalIDMax != 1 || st.KeysPerExternalIDMax != 1 {
		t.Errorf("CRM accepted %d (want %d), created max %d per external_id, max %d keys per external_id (want 1, 1)",
			st.Accepted, total, st.LeadsCreatedPerExternalIDMax, st.KeysPerExternalIDMax)
	}
	noSecrets(t, log2.String())
	for _, l := range []string{log1.String(), log2.String()} {
		if strings.Contains(l, processIntakeToken) {
			t.Fatal("serve logged the intake token")
		}
	}
}
