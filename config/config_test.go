package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "leadwatch.toml")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestExampleFileSetsEveryKey(t *testing.T) {
	c := Config{}
	w, err := c.LoadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 0 && !strings.Contains(w[0], "chmod") {
		t.Errorf("unexpected warning %v", w)
	}
	// Every TOML key of Config must be written in the example, so that a
	// newcomer sees it with its comment.
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	walkKeys(reflect.TypeOf(Config{}), "", func(table, key string) {
		if !bytes.Contains(data, []byte("\n"+key+" = ")) {
			missing = append(missing, table+"."+key)
		}
	})
	if len(missing) > 0 {
		t.Fatalf("config.example.toml lacks keys: %v", missing)
	}
	def := Default()
	if c.Retry != def.Retry || c.Callbacks.Tolerance != def.Callbacks.Tolerance || c.CRM.Timeout != def.CRM.Timeout || c.Callbacks.MaxBody != def.Callbacks.MaxBody ||
		c.Callbacks.MaxConns != def.Callbacks.MaxConns || c.Callbacks.MaxBodyBytesInFlight != def.Callbacks.MaxBodyBytesInFlight {
		t.Errorf("example values differ from defaults: %+v vs %+v", c, def)
	}
}

func walkKeys(t reflect.Type, table string, fn func(table, key string)) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if f.Type.Kind() == reflect.Struct && table == "" {
			walkKeys(f.Type, tag, fn)
			continue
		}
		fn(table, tag)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"BadDuration", "[crm]\ntimeout = \"thirty\"\n", `line 2: key crm.timeout: "thirty" is not a duration`},
		{"WrongType", "[crm]\nbase_url = \"x\"\nconcurrency = \"many\"\n", "line 3"},
		{"UnknownKey", "[crm]\nbase_url = \"x\"\nbse_url = \"y\"\n", "line 3: unknown key crm.bse_url"},
		{"Syntax", "[crm\nbase_url = 1\n", "to end table name"},
		{"UnquotedSecretNotShown", "[crm]\napi_key = abcdefSECRET123\n", "line 2: key crm.api_key: malformed value (not shown"},
		{"BadSecretListNotShown", "[callbacks]\nsecrets = [\"ok\", SECRETxyz]\n", "not shown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			_, err := c.LoadFile(writeFile(t, tt.body, 0o600))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error quotes a secret: %v", err)
			}
		})
	}
}

func TestPrecedenceFileThenEnv(t *testing.T) {
	p := writeFile(t, "[crm]\nbase_url = \"http://file\"\napi_key = \"filekey\"\n[callbacks]\nlisten = \"127.0.0.1:9\"\nsecrets = [\"a\"]\n[store]\npath = \"file.db\"\n", 0o600)
	c, warn, err := Load(p, env(map[string]string{
		"CARTELCRM_BASE_URL": "http://env",
		"CALLBACK_SECRET":    "new, old ,",
		"PORT":               "9090",
		"LEADWATCH_DB":       "env.db",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 0 {
		t.Errorf("unexpected warnings %v", warn)
	}
	if c.CRM.BaseURL != "http://env" || string(c.CRM.APIKey) != "filekey" {
		t.Errorf("crm = %+v", c.CRM)
	}
	if got := c.CallbackSecrets(); len(got) != 2 || string(got[0]) != "new" || string(got[1]) != "old" {
		t.Errorf("secrets = %q", got)
	}
	if c.Callbacks.Listen != ":9090" || c.Store.Path != "env.db" {
		t.Errorf("listen %q db %q", c.Callbacks.Listen, c.Store.Path)
	}
	c2, _, err := Load(p, env(map[string]string{"PORT": "9090", "LEADWATCH_LISTEN": "127.0.0.1:7"}))
	if err != nil || c2.Callbacks.Listen != "127.0.0.1:7" {
		t.Errorf("LEADWATCH_LISTEN must win over PORT: %q %v", c2.Callbacks.Listen, err)
	}
	if _, _, err := Load(p, env(map[string]string{"PORT": "http"})); err == nil {
		t.Error("PORT=http accepted")
	}
}

func TestWorldReadableWarns(t *testing.T) {
	p := writeFile(t, "[store]\npath = \"x.db\"\n", 0o644)
	_, warn, err := Load(p, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "chmod 600") {
		t.Fatalf("warnings = %v", warn)
	}
}

func TestValidateNamesWhatIsMissing(t *testing.T) {
	c := Default()
	for _, tt := range []struct {
		need Need
		set  func(*Config)
		want string
	}{
		{NeedSender, func(*Config) {}, "CARTELCRM_BASE_URL"},
		{NeedSender, func(c *Config) { c.CRM.BaseURL = "http://x" }, "CARTELCRM_API_KEY"},
		{NeedSender, func(c *Config) { c.CRM.APIKey = "k" }, "CARTELCRM_HMAC_SECRET"},
		{NeedListener, func(*Config) {}, "CALLBACK_SECRET"},
	} {
		tt.set(&c)
		err := c.Validate(tt.need)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate = %v, want mention of %s", err, tt.want)
		}
	}
	c.CRM.HMACSecret = "h"
	c.Callbacks.Secrets = []Secret{"s"}
	if err := c.Validate(NeedSender | NeedListener); err != nil {
		t.Errorf("complete config refused: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	const k, h, cb = "apikey-SEKRIT-1", "hmac-SEKRIT-2", "cb-SEKRIT-3"
	c := Default()
	c.CRM.APIKey, c.CRM.HMACSecret, c.Callbacks.Secrets = k, h, []Secret{cb}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v %+v %#v %s", c, c, c, c.CRM.APIKey)
	j, _ := json.Marshal(c)
	buf.Write(j)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "crm", c.CRM, "key", c.CRM.APIKey, "secrets", c.Callbacks.Secrets)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "key", c.CRM.HMACSecret)
	for _, s := range []string{k, h, cb} {
		if strings.Contains(buf.String(), s) {
			t.Fatalf("secret %q printed in:\n%s", s, buf.String())
		}
	}
	if string(c.CRM.APIKey.Reveal()) != k {
		t.Error("Reveal lost the value")
	}
}

// TestValidateReportsAllAtOnce: one run names every missing key with its
// environment variable, and every bad value, on one line.
func TestValidateReportsAllAtOnce(t *testing.T) {
	c := Default()
	c.CRM.Concurrency = 0
	c.Callbacks.Path = "cb"
	err := c.Validate(NeedSender | NeedListener)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want a *ValidationError", err)
	}
	want := "crm.base_url (CARTELCRM_BASE_URL), crm.api_key (CARTELCRM_API_KEY), crm.hmac_secret (CARTELCRM_HMAC_SECRET) " +
		"and callbacks.secrets (CALLBACK_SECRET) are not set: put them in the config file or the environment; " +
		"crm.concurrency must be at least 1, not 0; callbacks.path must start with /, not \"cb\""
	if err.Error() != want {
		t.Errorf("Validate =\n%s\nwant\n%s", err, want)
	}
	one := (&ValidationError{Missing: []string{"crm.api_key"}}).Error()
	if one != "crm.api_key (CARTELCRM_API_KEY) is not set: put it in the config file or the environment" {
		t.Errorf("one key: %s", one)
	}
}

// TestEnvironmentIsWhatApplyEnvReads: every listed variable sets its key,
// so --help, error messages and the loader cannot drift apart.
func TestEnvironmentIsWhatApplyEnvReads(t *testing.T) {
	values := map[string]string{"PORT": "9999", "CALLBACK_SECRET": "cb"}
	for _, ev := range Environment() {
		if ev.Help == "" {
			t.Errorf("%s has no help", ev.Name)
		}
		c := Default()
		v := values[ev.Name]
		if v == "" {
			v = "value-of-" + ev.Name
		}
		before := fmt.Sprintf("%#v", Default())
		if err := c.ApplyEnv(env(map[string]string{ev.Name: v})); err != nil {
			t.Fatalf("%s: %v", ev.Name, err)
		}
		if fmt.Sprintf("%#v", c) == before {
			t.Errorf("%s changed nothing", ev.Name)
		}
		if EnvFor(ev.Key) == "" {
			t.Errorf("EnvFor(%s) is empty", ev.Key)
		}
	}
	if EnvFor("crm.timeout") != "" {
		t.Error("crm.timeout has an environment variable")
	}
}

func TestBaseURLChecked(t *testing.T) {
	c := Default()
	c.CRM.BaseURL, c.CRM.APIKey, c.CRM.HMACSecret = "ftp://user:SECRETpw@crm.example/x?token=SECRETtok", "k", "h"
	err := c.Validate(NeedSender)
	if err == nil || !strings.Contains(err.Error(), `crm.base_url must be an absolute http(s) URL, not "ftp://crm.example/x"`) {
		t.Fatalf("Validate = %v", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error quotes a secret: %v", err)
	}
	c.CRM.BaseURL = "https://crm.example/api"
	if err := c.Validate(NeedSender); err != nil {
		t.Fatalf("good URL: %v", err)
	}
}

func TestListenerBounds(t *testing.T) {
	valid := func(c *Config) {
		c.Callbacks.Secrets = []Secret{"s"}
	}
	tests := []struct {
		name string
		mod  func(c *Config)
		want string // "" = valid
	}{
		{"Defaults", func(*Config) {}, ""},
		{"MaxConnsSet", func(c *Config) { c.Callbacks.MaxConns = 5000 }, ""},
		{"MaxConnsNegative", func(c *Config) { c.Callbacks.MaxConns = -1 }, "callbacks.max_conns must not be negative (0: as many as the open-file limit allows), not -1"},
		{"BudgetBelowMaxBody", func(c *Config) { c.Callbacks.MaxBodyBytesInFlight = 1000 },
			"callbacks.max_body_bytes_in_flight must be at least callbacks.max_body (1048576), not 1000"},
		{"BudgetEqualsMaxBody", func(c *Config) { c.Callbacks.MaxBodyBytesInFlight = c.Callbacks.MaxBody }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			valid(&c)
			tt.mod(&c)
			err := c.Validate(NeedListener)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate = %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("Validate = %v, want %s", err, tt.want)
			}
		})
	}
	c := Default()
	if _, err := c.LoadFile(writeFile(t, "[callbacks]\nmax_conns = 300\nmax_body_bytes_in_flight = 4194304\n", 0o600)); err != nil {
		t.Fatal(err)
	}
	if c.Callbacks.MaxConns != 300 || c.Callbacks.MaxBodyBytesInFlight != 4<<20 {
		t.Errorf("loaded %+v", c.Callbacks)
	}
}

// TestIntake: the intake is off without a token, its token comes from the
// environment and never prints, and a bad max_body or a callback path on
// the intake's own path is a configuration error.
func TestIntake(t *testing.T) {
	const tok = "intake-SEKRIT-4"
	c := Default()
	c.Callbacks.Secrets = []Secret{"s"}
	if c.Intake.Token != "" || c.Intake.MaxBody != 1<<20 {
		t.Fatalf("default intake %+v, want off and 1 MiB", c.Intake)
	}
	if err := c.ApplyEnv(env(map[string]string{"LEADWATCH_INTAKE_TOKEN": tok})); err != nil {
		t.Fatal(err)
	}
	if string(c.Intake.Token.Reveal()) != tok {
		t.Fatal("LEADWATCH_INTAKE_TOKEN did not set intake.token")
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v %+v %#v", c, c.Intake, c.Intake.Token)
	j, _ := json.Marshal(c)
	buf.Write(j)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "intake", c.Intake)
	if strings.Contains(buf.String(), tok) {
		t.Fatalf("the intake token printed in:\n%s", buf.String())
	}
	if err := c.Validate(NeedListener); err != nil {
		t.Fatalf("valid intake: %v", err)
	}
	bad := c
	bad.Intake.MaxBody = 0
	if err := bad.Validate(NeedListener); err == nil || !strings.Contains(err.Error(), "intake.max_body must be positive") {
		t.Errorf("max_body 0: %v", err)
	}
	bad = c
	bad.Callbacks.Path = IntakePath
	if err := bad.Validate(NeedListener); err == nil || !strings.Contains(err.Error(), "callbacks.path must differ from the intake's /v1/leads") {
		t.Errorf("callbacks.path on the intake: %v", err)
	}
	bad.Intake.Token = ""
	if err := bad.Validate(NeedListener); err != nil {
		t.Errorf("callbacks.path /v1/leads with the intake off: %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "lw.toml")
	if err := os.WriteFile(p, []byte("[intake]\ntoken = \"tok-SEKRIT-5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var fc Config
	if _, err := fc.LoadFile(p); err == nil || strings.Contains(err.Error(), "SEKRIT") {
		t.Errorf("malformed token: %v, want an error that does not quote it", err)
	}
}
