package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Without a token, serve refuses an address that is not loopback before it
// connects to anything.
func TestServeRefusesNonLoopbackWithoutToken(t *testing.T) {
	t.Setenv("PROMPTQ_ADMIN_TOKEN", "")
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "192.0.2.1:8080", "[::]:8080"} {
		var out, errOut bytes.Buffer
		err := Run(context.Background(), []string{"serve", "--addr", addr, "--redis", "redis://127.0.0.1:1/0"}, nil, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "PROMPTQ_ADMIN_TOKEN") {
			t.Errorf("serve --addr %s without a token: %v, want a refusal naming PROMPTQ_ADMIN_TOKEN", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8080", "localhost:8080", "[::1]:8080"} {
		if !loopbackAddr(addr) {
			t.Errorf("loopbackAddr(%q) = false", addr)
		}
	}
}

// Every serve flag has an environment variable, shown in --help.
func TestServeHelpListsEnv(t *testing.T) {
	var out bytes.Buffer
	_ = Run(context.Background(), []string{"serve", "--help"}, nil, &out, &out)
	for _, want := range []string{"--metrics-public", "PROMPTQ_METRICS_PUBLIC", "--allowed-hosts", "PROMPTQ_ALLOWED_HOSTS",
		"--allowed-origins", "PROMPTQ_ALLOWED_ORIGINS", "--max-client-requests", "PROMPTQ_MAX_CLIENT_REQUESTS",
		"--read-timeout", "PROMPTQ_READ_TIMEOUT", "--write-timeout", "PROMPTQ_WRITE_TIMEOUT", "--idle-timeout", "PROMPTQ_IDLE_TIMEOUT"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("serve --help lacks %s", want)
		}
	}
}
