package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/leadfile"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// TestSubmitStreamsStdin: `submit -` on a pipe enqueues each line as it
// arrives, while the writer still holds the pipe open, and reports a bad
// line as soon as it is read, in line order, then the summary at EOF.
func TestSubmitStreamsStdin(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "stream.db")
	db := storetest.OpenPath(t, dbPath, store.Options{})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"submit", "-"}, env{
			stdin: r, stdout: &stdout, stderr: &stderr,
			getenv: func(k string) string { return map[string]string{"LEADWATCH_DB": dbPath}[k] },
		})
	}()
	has := func(id string) bool {
		_, err := db.Lead(context.Background(), id)
		return err == nil
	}
	// A byte order mark and blank lines first, as an editor or a
	// tracker's first flush may send; then one lead, and nothing more.
	fmt.Fprint(w, "\xef\xbb\xbf\n  \n"+`{"external_id":"st-1","phone":"+380501234567"}`+"\n")
	poll.Until(t, "st-1 enqueued before the input ends", func() bool { return has("st-1") })
	fmt.Fprint(w, `{"external_id":"st-2"}`+"\r\n")
	poll.Until(t, "line 4 reported before the input ends", func() bool {
		return strings.Contains(stderr.String(), "leadwatch submit: line 4: invalid lead: phone is required")
	})
	fmt.Fprint(w, `{"external_id":"st-3","phone":"12"}`+"\n")
	poll.Until(t, "st-3 enqueued, flagged", func() bool { return has("st-3") })
	// A burst: many lines at once, enqueued together, and a last line
	// without its newline.
	var burst strings.Builder
	for i := range 500 {
		fmt.Fprintf(&burst, `{"external_id":"st-b%03d","phone":"+380501234567"}`+"\n", i)
	}
	burst.WriteString(`{"external_id":"st-1","phone":"+380501234567"}` + "\n")
	burst.WriteString(`{"external_id":"st-last","phone":"+380501234567"}`)
	fmt.Fprint(w, burst.String())
	w.Close()
	if code := <-done; code != 1 {
		t.Fatalf("exit %d, want 1 (lines refused); stderr:\n%s", code, stderr.String())
	}
	want := []string{
		"leadwatch submit: line 4: invalid lead: phone is required",
		"leadwatch submit: line 5: warning: phone is not valid E.164; sending anyway (use --strict to refuse)",
		"leadwatch submit: line 506: external_id already in the outbox: st-1 is already there (queued)",
		"leadwatch: 2 line(s) refused",
	}
	if got := strings.TrimSpace(stderr.String()); got != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if got := stdout.String(); got != "enqueued 503 lead(s), refused 2\n" {
		t.Errorf("stdout %q", got)
	}
	for _, id := range []string{"st-1", "st-3", "st-b000", "st-b499", "st-last"} {
		l, err := db.Lead(context.Background(), id)
		if err != nil || l.State != crm.StateQueued {
			t.Errorf("%s: %+v %v", id, l.State, err)
		}
	}
}

// TestSubmitStreamEdges: what `submit -` makes of inputs that are not a
// plain stream of leads.
func TestSubmitStreamEdges(t *testing.T) {
	long := `{"external_id":"e-long","phone":"` + strings.Repeat("1", leadfile.MaxLine) + `"}`
	tests := []struct {
		name, in       string
		code           int
		stdout, stderr string
		stored         []string
	}{
		{"Empty", "", 1, "", "leadwatch: read leads: no leads in input", nil},
		{"BlankOnly", "\n \r\n\n", 1, "", "leadwatch: read leads: no leads in input", nil},
		{"NoNewline", `{"external_id":"e-1","phone":"+380501234567"}`, 0, "enqueued 1 lead(s), refused 0", "", []string{"e-1"}},
		{"TooLongLine", long + "\n" + `{"external_id":"e-2","phone":"+380501234567"}` + "\n", 1, "enqueued 1 lead(s), refused 1",
			fmt.Sprintf("leadwatch submit: line 1: longer than %d bytes\nleadwatch: 1 line(s) refused", leadfile.MaxLine), []string{"e-2"}},
		{"CSV", "\nexternal_id,phone\ne-3,+380501234567\ne-4\n", 1, "enqueued 1 lead(s), refused 1",
			"leadwatch submit: line 4: 1 fields, the header has 2\nleadwatch: 1 line(s) refused", []string{"e-3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbPath := filepath.Join(t.TempDir(), "edge.db")
			code, out, errOut := runCLI(t, map[string]string{"LEADWATCH_DB": dbPath}, tc.in, "submit", "-")
			if code != tc.code || strings.TrimSpace(out) != tc.stdout || strings.TrimSpace(errOut) != tc.stderr {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errOut, tc.code, tc.stdout, tc.stderr)
			}
			if len(tc.stored) == 0 {
				return
			}
			db := storetest.OpenPath(t, dbPath, store.Options{})
			for _, id := range tc.stored {
				if _, err := db.Lead(context.Background(), id); err != nil {
					t.Errorf("%s: %v", id, err)
				}
			}
		})
	}
}
