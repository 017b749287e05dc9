package main

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/config"
)

// TestConnLimiterBelowFDLimit: the listener's cap sits below the process's
// open-file limit with headroom, a configured cap above that is lowered
// with a warning, and both numbers are logged at start.
func TestConnLimiterBelowFDLimit(t *testing.T) {
	fdLimit, err := callbacks.FDLimit()
	if err != nil {
		t.Skipf("no open-file limit here: %v", err)
	}
	tests := []struct {
		name       string
		configured int
		want       int
		wantLevel  string
	}{
		{"Default", 0, callbacks.MaxConns(0, fdLimit), "level=INFO"},
		{"AboveLimit", int(fdLimit) + 1000, callbacks.MaxConns(0, fdLimit), "level=WARN"},
		{"Below", 10, 10, "level=INFO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			cfg := config.Default()
			cfg.Callbacks.MaxConns = tt.configured
			lim := connLimiter(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
			if lim.Max() != tt.want {
				t.Errorf("cap %d, want %d (fd limit %d)", lim.Max(), tt.want, fdLimit)
			}
			if fdLimit > 2*callbacks.FDHeadroom && uint64(lim.Max()) > fdLimit-callbacks.FDHeadroom {
				t.Errorf("cap %d leaves under %d of the %d descriptors", lim.Max(), callbacks.FDHeadroom, fdLimit)
			}
			line := buf.String()
			for _, want := range []string{tt.wantLevel, "max_conns=" + strconv.Itoa(tt.want), "fd_limit=" + strconv.FormatUint(fdLimit, 10), "max_body_bytes_in_flight=16777216"} {
				if !strings.Contains(line, want) {
					t.Errorf("start log %q lacks %q", line, want)
				}
			}
		})
	}
}
