package ui

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/leadwatch/leadwatch/crm"
)

func TestResubmit(t *testing.T) {
	cases := []struct {
		name    string
		keys    []string
		lead    string
		wantKey string
	}{
		{"FailedKeepsKey", []string{"3"}, "ext-301", "same key ext-301-1773489000000-0a0b0c0d (unchanged failed lead)"},
		{"RejectedNewKey", []string{"3", "G"}, "ext-303", "a new key, since rejected is a final answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			m := press(t, h.sized(t, 160, 48), append(tc.keys, "r")...)
			v := m.View()
			requireContains(t, v, "Resubmit "+tc.lead+"?", tc.wantKey, "[ No ]")

			t.Run("EnterDefaultsToNo", func(t *testing.T) {
				m := press(t, m, "enter")
				requireLacks(t, m.View(), "Resubmit "+tc.lead+"?")
				if len(h.src.resubmits) != 0 {
					t.Fatalf("resubmitted on enter: %+v", h.src.resubmits)
				}
			})
			t.Run("NCancels", func(t *testing.T) {
				m := press(t, m, "n")
				requireLacks(t, m.View(), "Resubmit "+tc.lead+"?")
				if len(h.src.resubmits) != 0 {
					t.Fatalf("resubmitted on n: %+v", h.src.resubmits)
				}
			})
			t.Run("YResubmits", func(t *testing.T) {
				m := press(t, m, "y")
				if len(h.src.resubmits) != 1 || h.src.resubmits[0].ExternalID != tc.lead || h.src.resubmits[0].Payload != nil {
					t.Fatalf("resubmits = %+v, want one of %s with the stored payload", h.src.resubmits, tc.lead)
				}
				requireContains(t, m.View(), "resubmitted "+tc.lead)
			})
		})
	}
	t.Run("NotResubmittable", func(t *testing.T) {
		h := newHarness()
		m := press(t, h.sized(t, 160, 48), "r") // a retrying lead
		requireContains(t, m.View(), "ext-103 is retry_wait")
		requireLacks(t, m.View(), "Confirm")
	})
	t.Run("ArrowsThenEnter", func(t *testing.T) {
		h := newHarness()
		m := press(t, h.sized(t, 160, 48), "3", "r", "l")
		requireContains(t, m.View(), "[ Yes ]")
		m = press(t, m, "enter")
		if len(h.src.resubmits) != 1 {
			t.Fatalf("resubmits = %+v", h.src.resubmits)
		}
	})
}

func TestEditAndResubmit(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "j", "e") // ext-302, validation_error
	requireContains(t, m.View(), "Edit payload of ext-302", `"phone": "12345"`)

	t.Run("InvalidJSONRefused", func(t *testing.T) {
		m := press(t, m, "x", "ctrl+s")
		requireContains(t, m.View(), "not valid JSON")
		requireLacks(t, m.View(), "Resubmit ext-302?")
	})
	t.Run("ExternalIDMustStay", func(t *testing.T) {
		m := m
		m = setEditorText(t, m, `{"external_id":"other","phone":"+4915112345678"}`)
		m = press(t, m, "ctrl+s")
		requireContains(t, m.View(), `external_id must stay "ext-302"`)
	})

	m = setEditorText(t, m, "{\n  \"external_id\": \"ext-302\",\n  \"phone\": \"+4915112345678\"\n}")
	m = press(t, m, "ctrl+s")
	requireContains(t, m.View(), "Resubmit ext-302?", "a new key, since the payload changed", "edited (", "[ No ]")

	t.Run("NoReturnsToEditor", func(t *testing.T) {
		m := press(t, m, "n")
		requireContains(t, m.View(), "Edit payload of ext-302", "+4915112345678")
	})
	m = press(t, m, "y")
	want := `{"external_id":"ext-302","phone":"+4915112345678"}`
	if len(h.src.resubmits) != 1 || string(h.src.resubmits[0].Payload) != want {
		t.Fatalf("resubmits = %+v, want the compact edit %s", h.src.resubmits, want)
	}
	requireContains(t, m.View(), "resubmitted ext-302 · new key")
}

func TestPause(t *testing.T) {
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "p")
	requireContains(t, m.View(), "⏸ paused", "sending paused")
	m = press(t, m, "p")
	requireContains(t, m.View(), "▶ sending")
	if len(h.pauses) != 2 || !h.pauses[0] || h.pauses[1] {
		t.Fatalf("Pause calls = %v, want [true false]", h.pauses)
	}

	t.Run("Unavailable", func(t *testing.T) {
		cfg := newHarness().config()
		cfg.Pause = nil
		m := drive(t, New(cfg), tea.WindowSizeMsg{Width: 160, Height: 48})
		m = press(t, m, "p")
		requireContains(t, m.View(), "pausing is not available")
	})
}

func TestCopyCurl(t *testing.T) {
	const secret, apiKey = "hmac-literal-s3cr3t", "api-literal-k3y"
	t.Setenv("CARTELCRM_HMAC_SECRET", secret)
	t.Setenv("CARTELCRM_API_KEY", apiKey)
	h := newHarness()
	m := press(t, h.sized(t, 160, 48), "3", "c")
	if len(h.clip) != 1 {
		t.Fatalf("clipboard calls = %d", len(h.clip))
	}
	cmd := h.clip[0]
	for _, want := range []string{`"$CARTELCRM_HMAC_SECRET"`, `$CARTELCRM_API_KEY`, "Idempotency-Key: ext-301-1773489000000-0a0b0c0d",
		"https://crm.example.test/api", "/v1/inbound/leads", "openssl dgst -sha256 -hmac", "--data-binary \"$body\""} {
		if !strings.Contains(cmd, want) {
			t.Fatalf("curl lacks %q:\n%s", want, cmd)
		}
	}
	for _, bad := range []string{secret, apiKey, "pw@", "token=x"} {
		if strings.Contains(cmd, bad) {
			t.Fatalf("curl contains secret %q:\n%s", bad, cmd)
		}
	}
	requireContains(t, m.View(), "curl — secrets come from the environment", "copied to the clipboard", "CARTELCRM_HMAC_SECRET")
	m = press(t, m, "esc")
	requireLacks(t, m.View(), "curl — secrets")

	t.Run("ClipboardFails", func(t *testing.T) {
		cfg := newHarness().config()
		cfg.Clipboard = func(string) error { return errors.New("no tty") }
		m := press(t, drive(t, New(cfg), tea.WindowSizeMsg{Width: 160, Height: 48}), "c")
		requireContains(t, m.View(), "clipboard: no tty", "Idempotency-Key")
	})
}

func TestExternalEditorRoundTrip(t *testing.T) {
	h := newHarness()
	m := h.sized(t, 160, 48)
	lead := h.src.leads[6] // ext-302

	msgs := runCmd(t, writeEditorFile(lead))
	file, ok := msgs[0].(editorFileMsg)
	if !ok {
		t.Fatalf("writeEditorFile gave %T", msgs[0])
	}
	b, err := os.ReadFile(file.path)
	if err != nil || !strings.Contains(string(b), `"phone": "12345"`) {
		t.Fatalf("editor file = %q, %v", b, err)
	}
	// What $EDITOR would do.
	if err := os.WriteFile(file.path, []byte(`{"external_id":"ext-302","phone":"+4915112345678"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m = drive(t, m, editorClosedMsg{path: file.path, lead: lead})
	if _, err := os.Stat(file.path); !os.IsNotExist(err) {
		t.Fatalf("temp file left behind: %v", err)
	}
	requireContains(t, m.View(), "Edit payload of ext-302", "+4915112345678")
	m = press(t, m, "ctrl+s", "y")
	if len(h.src.resubmits) != 1 || string(h.src.resubmits[0].Payload) != `{"external_id":"ext-302","phone":"+4915112345678"}` {
		t.Fatalf("resubmits = %+v", h.src.resubmits)
	}

	t.Run("EditorFailed", func(t *testing.T) {
		f, err := os.CreateTemp(t.TempDir(), "x-*.json")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		m := drive(t, h.sized(t, 160, 48), editorClosedMsg{path: f.Name(), lead: lead, err: errors.New("exit status 1")})
		requireContains(t, m.View(), "editor: exit status 1 (nothing resubmitted)")
		requireLacks(t, m.View(), "Edit payload")
	})
}

// TestEditorUnchangedWhateverSpacing: a payload stored with spaces, opened
// and saved as it is, is unchanged (nil), so a failed lead keeps its key;
// characters the screen would replace reach the editor as they are.
func TestEditorUnchangedWhateverSpacing(t *testing.T) {
	st := NewStyles(lipgloss.NewRenderer(io.Discard), DefaultPalette())
	stored := []byte("{\"external_id\": \"x-1\", \"phone\": \"+4915112345678\", \"note\": \"caf\u00e9 \\u0007\"}")
	lead := crm.Lead{ExternalID: "x-1", State: crm.StateFailed, Payload: stored}
	e := newEditor(st, newKeyMap(), lead, editableJSON(stored))
	got, err := e.check()
	if err != nil || got != nil {
		t.Fatalf("check() = %q, %v; want nil, nil (unchanged)", got, err)
	}
	if !strings.Contains(e.ta.Value(), `\u0007`) {
		t.Fatalf("editor text altered: %q", e.ta.Value())
	}
	e.ta.SetValue(strings.Replace(editableJSON(stored), "+4915112345678", "+4915112345679", 1))
	got, err = e.check()
	if err != nil || string(got) != `{"external_id":"x-1","phone":"+4915112345679","note":"café \u0007"}` {
		t.Fatalf("edited: %q, %v", got, err)
	}
}

// TestEditorChecksWithCheckLead: the editor refuses what crm.CheckLead
// refuses, with its reason, and then insists on the same external_id.
func TestEditorChecksWithCheckLead(t *testing.T) {
	lead := crm.Lead{ExternalID: "x-1", State: crm.StateRejected, Payload: []byte(`{"external_id":"x-1","phone":"+4915112345678"}`)}
	cases := []struct {
		name, text, want string
	}{
		{"NotJSON", `{"external_id":"x-1",`, "not valid JSON: invalid lead"},
		{"NotAnObject", `["x-1"]`, "invalid lead: not a JSON object"},
		{"NoPhone", `{"external_id":"x-1"}`, "invalid lead: phone is required"},
		{"ControlInID", `{"external_id":"x-1\u0007","phone":"+4915112345678"}`, "invalid lead: external_id contains a control character"},
		{"TooBig", `{"external_id":"x-1","phone":"+4915112345678","pad":"` + strings.Repeat("x", crm.DefaultMaxLeadBytes) + `"}`, "over the 1048576-byte limit"},
		{"OtherLead", `{"external_id":"x-2","phone":"+4915112345678"}`, `external_id must stay "x-1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newEditor(testStyles(), newKeyMap(), lead, tc.text).check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check() = %v, want %q", err, tc.want)
			}
			if tc.name != "OtherLead" && !errors.Is(err, crm.ErrInvalidLead) {
				t.Fatalf("check() = %v, want it to wrap crm.ErrInvalidLead", err)
			}
		})
	}
	t.Run("InvalidPhoneAllowed", func(t *testing.T) {
		// Not strict, as enqueue by default: the CRM judges the phone.
		got, err := newEditor(testStyles(), newKeyMap(), lead, `{"external_id":"x-1","phone":"12345"}`).check()
		if err != nil || string(got) != `{"external_id":"x-1","phone":"12345"}` {
			t.Fatalf("check() = %q, %v", got, err)
		}
	})
}
