package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxExternalIDLen is the longest external_id the sandbox takes, counted in
// characters (runes), not bytes, so a Cyrillic id gets the same room as a
// Latin one.
const MaxExternalIDLen = 128

// errNotObject means the body is not one JSON object. It is a malformed
// request rather than a bad lead, so it gets a 400 and is never stored under
// the idempotency key.
var errNotObject = errors.New("body is not one JSON object")

// leadInput is a submitted body decoded into its top-level fields, not yet
// validated; each field stays raw JSON until a rule reads it.
type leadInput struct {
	fields map[string]json.RawMessage
}

// decodeLead reads body as exactly one JSON object. Extra keys are kept
// untouched in the map: the sandbox, like the real CRM, ignores what it does
// not know.
func decodeLead(body []byte) (leadInput, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return leadInput{}, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return leadInput{}, errNotObject
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return leadInput{}, errNotObject
	}
	return leadInput{fields: m}, nil
}

// validLead is a lead that passed validation, with its fields normalised
// (the country upper-cased).
type validLead struct {
	ExternalID string
	Phone      string
	Email      string
	Country    string
}

// validate applies docs/protocol.md §4's rules in field order and returns the
// first failure as a reason of the form "<field>: <what is wrong>", so the
// reason always starts with the field's name.
func (in leadInput) validate() (validLead, string) {
	var v validLead
	var reason string

	v.ExternalID, reason = in.str("external_id", true)
	if reason != "" {
		return v, reason
	}
	if n := utf8.RuneCountInString(v.ExternalID); n > MaxExternalIDLen {
		return v, "external_id: longer than 128 characters"
	}

	v.Phone, reason = in.str("phone", true)
	if reason != "" {
		return v, reason
	}
	if !isE164(v.Phone) {
		return v, "phone: not E.164 (+ and 8 to 15 digits)"
	}

	v.Email, reason = in.str("email", false)
	if reason != "" {
		return v, reason
	}
	if v.Email != "" && !isEmail(v.Email) {
		return v, "email: not an email address"
	}

	v.Country, reason = in.str("country", false)
	if reason != "" {
		return v, reason
	}
	if v.Country != "" {
		v.Country = strings.ToUpper(v.Country)
		if !IsCountryCode(v.Country) {
			return v, "country: not an ISO 3166-1 alpha-2 code"
		}
	}
	return v, ""
}

// str returns field key as a string. A missing or null field is empty; a
// required one then fails, as does an empty string.
func (in leadInput) str(key string, required bool) (string, string) {
	raw, ok := in.fields[key]
	if !ok || string(raw) == "null" {
		if required {
			return "", key + ": required"
		}
		return "", ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", key + ": must be a string"
	}
	if required && s == "" {
		return "", key + ": required"
	}
	return s, ""
}

// isE164 reports whether s is "+" followed by 8 to 15 ASCII digits, the rule
// docs/protocol.md §4 fixes. It deliberately checks no numbering plan: the sandbox
// should refuse exactly what the protocol says and nothing more.
func isE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isEmail reports whether s is shaped like an address: one "@", a non-empty
// local part, and a domain of at least two non-empty dot-separated labels,
// with no spaces, controls or the delimiters that would make it a display
// name ("Bob <bob@x.io>") rather than an address. It is a shape check, as the
// protocol asks, not RFC 5322.
func isEmail(s string) bool {
	if len(s) > 254 {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`<>()[],;:\"`, r) {
			return false
		}
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(local) > 64 || strings.Contains(domain, "@") {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
	}
	return true
}

// isoAlpha2 is the ISO 3166-1 alpha-2 list of officially assigned codes
// (249 of them, as published by the ISO 3166 Maintenance Agency). It is a
// table rather than phonenumbers' GetSupportedRegions because that list is
// about dialling, not countries: it has AC, TA and XK, which ISO does not
// assign, and lacks uninhabited territories such as AQ and BV.
const isoAlpha2 = "" +
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ " +
	"BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
	"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ " +
	"DE DJ DK DM DO DZ " +
	"EC EE EG EH ER ES ET " +
	"FI FJ FK FM FO FR " +
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY " +
	"HK HM HN HR HT HU " +
	"ID IE IL IM IN IO IQ IR IS IT " +
	"JE JM JO JP " +
	"KE KG KH KI KM KN KP KR KW KY KZ " +
	"LA LB LC LI LK LR LS LT LU LV LY " +
	"MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ " +
	"NA NC NE NF NG NI NL NO NP NR NU NZ " +
	"OM " +
	"PA PE PF PG PH PK PL PM PN PR PS PT PW PY " +
	"QA " +
	"RE RO RS RU RW " +
	"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ " +
	"TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ " +
	"UA UG UM US UY UZ " +
	"VA VC VE VG VI VN VU " +
	"WF WS " +
	"YE YT " +
	"ZA ZM ZW"

// IsCountryCode reports whether code is an officially assigned ISO 3166-1
// alpha-2 code. It is case-sensitive (upper case), the form the table and
// the block list use; the sandbox upper-cases a lead's country before asking.
func IsCountryCode(code string) bool {
	if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
		return false
	}
	// Every code sits at a multiple of 3 in the table, so a match on a
	// boundary is a match on a whole code, never on the seam of two.
	for i := 0; i+2 <= len(isoAlpha2); i += 3 {
		if isoAlpha2[i:i+2] == code {
			return true
		}
	}
	return false
}
