package ui

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/aymanbagabas/go-osc52/v2"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/leadwatch/leadwatch/crm"
)

// curlChunk is how many bytes of the body go on one line of the curl
// snippet. The body is split into adjacent single-quoted words joined by
// backslash-newline, which sh removes, so the snippet stays narrow enough
// to read and copy from a modal while the bytes signed and sent are
// exactly the stored payload (a different body under the same
// Idempotency-Key would be refused by the CRM).
const curlChunk = 64

// shellQuote quotes s as one sh word: single quotes, with each ' written
// as '\”. Nothing inside single quotes is special to sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// quoteChunked quotes s as one sh word spread over lines of about n
// bytes, never splitting a UTF-8 sequence.
func quoteChunked(s string, n int) string {
	var parts []string
	for len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			cut = n
		}
		parts = append(parts, shellQuote(s[:cut]))
		s = s[cut:]
	}
	parts = append(parts, shellQuote(s))
	return strings.Join(parts, "\\\n")
}

// safeBaseURL drops credentials and the query from a base URL, so the
// header and the curl snippet never show a secret someone put there.
func safeBaseURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return clean(raw)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return strings.TrimRight(u.String(), "/")
}

// curlCommand writes an sh snippet that sends lead again exactly as the
// dispatcher would: the stored payload bytes, its idempotency key, and a
// fresh timestamp and signature computed when the snippet runs. The API
// key and HMAC secret are read from the environment at run time and never
// written into the snippet; the base URL defaults to the configured one
// and CARTELCRM_BASE_URL overrides it.
func curlCommand(lead crm.Lead, baseURL string) string {
	var b strings.Builder
	// Two short comment lines: the snippet is read and selected in an
	// 80-column terminal, where a wrapped comment would run as a command.
	b.WriteString("# leadwatch: send " + clean(lead.ExternalID) + " again\n")
	b.WriteString("# needs CARTELCRM_API_KEY and CARTELCRM_HMAC_SECRET\n")
	b.WriteString("base=${CARTELCRM_BASE_URL:-" + shellQuote(safeBaseURL(baseURL)) + "}\n")
	b.WriteString("body=" + quoteChunked(string(lead.Payload), curlChunk) + "\n")
	b.WriteString("ts=$(date +%s)\n")
	b.WriteString("sig=$(printf '%s' \"$body\" |\n")
	b.WriteString("  openssl dgst -sha256 -hmac \"$CARTELCRM_HMAC_SECRET\" |\n")
	b.WriteString("  sed 's/^.*= //')\n")
	b.WriteString("curl -sS -X POST \"$base" + crm.PathLeads + "\" \\\n")
	b.WriteString("  -H \"Authorization: Bearer $CARTELCRM_API_KEY\" \\\n")
	b.WriteString("  -H \"X-Signature: sha256=$sig\" \\\n")
	b.WriteString("  -H \"X-Timestamp: $ts\" \\\n")
	b.WriteString("  -H " + shellQuote("Idempotency-Key: "+lead.IdempotencyKey) + " \\\n")
	b.WriteString("  -H 'Content-Type: application/json' \\\n")
	b.WriteString("  --data-binary \"$body\"\n")
	return b.String()
}

// osc52For is the OSC 52 sequence that puts s on the clipboard from
// inside the terminal multiplexer getenv says runs (tmux by $TMUX, GNU
// screen by TERM=screen*): both swallow a bare OSC 52, and pass it on
// wrapped in their passthrough sequence (tmux needs allow-passthrough,
// or set-clipboard on for the bare form).
func osc52For(s string, getenv func(string) string) osc52.Sequence {
	seq := osc52.New(s)
	switch {
	case getenv("TMUX") != "":
		return seq.Tmux()
	case strings.HasPrefix(getenv("TERM"), "screen"):
		return seq.Screen()
	}
	return seq
}

// curlFileName is the snippet's file name for a lead: its external_id
// with anything but letters, digits, '.', '_' and '-' replaced, so an id
// cannot name another directory.
func curlFileName(externalID string) string {
	var b strings.Builder
	for _, r := range externalID {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == '.' && b.Len() > 0:
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	return "leadwatch-curl-" + b.String() + ".sh"
}

// curlDirs are where the snippet may be saved, in order: the working
// directory, then $XDG_STATE_HOME/leadwatch (~/.local/state/leadwatch),
// where the dashboard's log goes for a store that is not a file.
func curlDirs(getenv func(string) string) []string {
	dirs := []string{"."}
	state := getenv("XDG_STATE_HOME")
	if state == "" || !filepath.IsAbs(state) {
		if home := getenv("HOME"); home != "" {
			state = filepath.Join(home, ".local", "state")
		} else {
			state = ""
		}
	}
	if state != "" {
		dirs = append(dirs, filepath.Join(state, "leadwatch"))
	}
	return dirs
}

// saveCurl writes the snippet, readable by its owner only (it names the
// CRM and the lead's data, though no secret), to the first directory
// that takes it, and says where.
func saveCurl(externalID, text string) tea.Cmd {
	return func() tea.Msg {
		path, err := writeCurlFile(curlDirs(os.Getenv), curlFileName(externalID), text)
		return curlSavedMsg{path: path, err: err}
	}
}

// writeCurlFile writes text to name in the first of dirs it can.
func writeCurlFile(dirs []string, name, text string) (string, error) {
	var errs []error
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(dir, name)
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		if err := writePrivate(path, text+"\n"); err != nil {
			errs = append(errs, err)
			continue
		}
		return path, nil
	}
	return "", fmt.Errorf("no directory took it: %w", errors.Join(errs...))
}

// writePrivate writes a 0600 file, tightening one that was there.
func writePrivate(path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(text)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}
