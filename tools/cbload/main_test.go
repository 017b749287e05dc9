package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTargets(t *testing.T) {
	const a, b = "http://127.0.0.1:8088/cartelcrm/callback", "http://[::1]:8089/cartelcrm/callback"
	got, err := parseTargets(a+", "+b+",", 32)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{a, b}; !slices.Equal(got, want) {
		t.Fatalf("targets %q, want %q", got, want)
	}
	for _, c := range []struct{ list, want string }{
		{"", "need -url"},
		{a + ",http://192.0.2.1:80/x", "only loopback"},
		{a + "," + b, "need at least one connection per target"},
	} {
		workers := 32
		if strings.Contains(c.want, "per target") {
			workers = 1
		}
		if _, err := parseTargets(c.list, workers); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseTargets(%q, %d) = %v, want an error with %q", c.list, workers, err, c.want)
		}
	}
}
