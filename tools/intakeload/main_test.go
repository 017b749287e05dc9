package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/intake"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// TestLoad: against a real intake every lead is counted by its own
// answer, in single requests and in arrays.
func TestLoad(t *testing.T) {
	db := storetest.Open(t, store.Options{})
	h, err := intake.New(intake.Config{Token: []byte("tok")}, db, http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer func() { srv.Close(); h.Close() }()
	getenv := func(k string) string { return map[string]string{"LEADWATCH_INTAKE_TOKEN": "tok"}[k] }
	for _, batch := range []string{"1", "7"} {
		var out strings.Builder
		if err := run([]string{"-url", srv.URL + intake.Path, "-c", "4", "-n", "50", "-batch", batch, "-prefix", "b" + batch}, getenv, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "leads by answer: 202: 50; transport errors 0") {
			t.Errorf("batch %s:\n%s", batch, out.String())
		}
	}
	// The same leads again: every one is a duplicate.
	var out strings.Builder
	if err := run([]string{"-url", srv.URL + intake.Path, "-c", "2", "-n", "50", "-batch", "7", "-prefix", "b1"}, getenv, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "leads by answer: 409: 50;") {
		t.Errorf("again:\n%s", out.String())
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct{ args []string }{
		{[]string{"-url", "http://10.0.0.1:8080/v1/leads"}},
		{[]string{"-url", "http://example.com/v1/leads"}},
		{[]string{"-n", "0"}},
	} {
		if err := run(tc.args, func(string) string { return "tok" }, &strings.Builder{}); err == nil {
			t.Errorf("%v: no error", tc.args)
		}
	}
	if err := run(nil, func(string) string { return "" }, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "LEADWATCH_INTAKE_TOKEN") {
		t.Errorf("no token: %v", err)
	}
}
