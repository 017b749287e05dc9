package ui

import (
	"net/url"
	"strings"
	"unicode/utf8"

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
	b.WriteString("# leadwatch: send " + clean(lead.ExternalID) + " again (needs CARTELCRM_API_KEY and CARTELCRM_HMAC_SECRET)\n")
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
