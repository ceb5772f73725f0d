package quota

import "testing"

// A cold account (no limit known, nothing settled) admits one request at a
// time until the first response is settled; after that, unknown limits do
// not constrain.
func TestColdStartProbe(t *testing.T) {
	e := setupLimiter(t, Config{})
	first := e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	d := e.reserve(Cost{Requests: 1, Tokens: 100}, 50)
	if d.OK || d.Wait <= 0 {
		t.Fatalf("second reservation during the probe: %+v, want a short wait", d)
	}
	if err := e.l.Settle(e.ctx, first, Unknown, &Usage{InputTokens: 50, OutputTokens: 10, TotalTokens: 60}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	}
}

func TestProbeOffAndConfiguredLimits(t *testing.T) {
	e := setupLimiter(t, Config{Probe: -1})
	e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)

	// With a configured cap the bucket itself guards the cold start.
	e2 := setupLimiter(t, Config{RPM: 600})
	e2.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	e2.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
}
