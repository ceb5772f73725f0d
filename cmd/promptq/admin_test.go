package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/promptq/promptq/internal/status"
)

func TestPrintStatusPaused(t *testing.T) {
	until, eta := "2026-11-27T16:00:00Z", int64(59*60_000+2000)
	rep := &statusReport{Queues: map[string]status.Queue{
		"default": {Pending: 4, Throughput: &status.Throughput{PerSecond: 2, Source: "observed", Backlog: 4, ETAMs: &eta,
			Paused: true, PausedUntil: &until, PauseReason: "insufficient_quota"}},
		"low": {Pending: 1, Paused: true, Throughput: &status.Throughput{PerSecond: 2, Source: "observed", Backlog: 1,
			Paused: true, PauseReason: "manual pause"}},
	}}
	var b bytes.Buffer
	printStatus(&b, rep)
	out := b.String()
	for _, want := range []string{
		"59m2s (paused)",
		"queue default: paused until 2026-11-27T16:00:00Z (insufficient_quota); the ETA includes the pause",
		"queue low: paused until resumed (manual pause): no ETA",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}
