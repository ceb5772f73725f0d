package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
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

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer ok.Close()
	var out bytes.Buffer
	if err := runProbe(context.Background(), []string{"--url", ok.URL + "/healthz"}, nil, &out, &out); err != nil {
		t.Fatalf("probe of a healthy endpoint: %v", err)
	}
	if err := runProbe(context.Background(), []string{"--url", ok.URL + "/down"}, nil, &out, &out); err == nil {
		t.Fatal("probe of a 503 succeeded")
	}
	if err := runProbe(context.Background(), []string{"--url", "ftp://x"}, nil, &out, &out); err == nil {
		t.Fatal("probe of a non-http URL succeeded")
	}
}

// TestStatusPool: `promptq status` of a pool of two accounts, one paused,
// with requests admitted through the limiter, shows each member's tier,
// state and share of today's requests (adding up to 1), as JSON and text;
// `status --account` of a member shows its pool line and the pool.
func TestStatusPool(t *testing.T) {
	r, _, _ := setupQueue(t)
	ctx := context.Background()
	pool, east, west := testutil.Name(t)+"-pool", testutil.Name(t)+"-east", testutil.Name(t)+"-west"
	t.Cleanup(func() {
		r.Client.SRem(ctx, keys.Pools(), pool)
		r.Client.Del(ctx, keys.Pool(pool))
	})
	if err := r.Client.HSet(ctx, keys.Pool(pool), east, 1, west, 2).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.SAdd(ctx, keys.Pools(), pool).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.CleanupAccount(t, r.Client, east)
	testutil.CleanupAccount(t, r.Client, west)
	lim, err := quota.New(r.Client, quota.Config{RPM: 600, TPM: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	for acct, n := range map[string]int{east: 3, west: 1} {
		for i := range n {
			d, err := lim.ReserveRequest(ctx, acct, quota.Input{Chars: 40}, 100)
			if err != nil || !d.OK {
				t.Fatalf("reserve for %s: %+v %v", acct, d, err)
			}
			if i == 0 { // the provider's headers: the limits are known
				info := quota.HeaderInfo{Requests: quota.Bucket{Limit: 500, Remaining: 499, Reset: 120 * time.Millisecond},
					Tokens: quota.Bucket{Limit: 30_000, Remaining: 29_960, Reset: 80 * time.Millisecond}, RetryAfter: -1}
				if err := lim.Settle(ctx, d.Reservation, info, &quota.Usage{InputTokens: 10, OutputTokens: 30}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	gate, err := pausegate.New(r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if _, err := gate.Pause(ctx, west, pausegate.PauseRequest{Until: until, Reason: "insufficient_quota", Kind: pausegate.KindQuota}); err != nil {
		t.Fatal(err)
	}

	out, _, err := runCLI(t, "", "status", "--redis", r.URL, "--account", west, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	p, ok := rep.Pools[pool]
	if !ok || len(p.Accounts) != 2 {
		t.Fatalf("pools = %+v, want %s with both accounts", rep.Pools, pool)
	}
	sum := 0.0
	for _, a := range p.Accounts {
		if a.ShareToday == nil {
			t.Fatalf("%s: no share", a.Account)
		}
		sum += *a.ShareToday
	}
	e, w := p.Accounts[0], p.Accounts[1]
	if math.Abs(sum-1) > 1e-12 || *e.ShareToday != 0.75 || e.State != status.StateActive || w.State != status.StatePaused {
		t.Fatalf("pool: %+v, want east active with 0.75, west paused with 0.25", p)
	}

	out, _, err = runCLI(t, "", "status", "--redis", r.URL, "--account", west)
	if err != nil {
		t.Fatal(err)
	}
	untilS := until.UTC().Format(time.RFC3339)
	for _, want := range []string{
		"pool " + pool + ": 4 requests, ",
		"SHARE is the account's part of the pool's requests today",
		"pool " + pool + ", tier 2: paused until " + untilS + " (insufficient_quota, quota); 25.0% of the pool's requests today (1 of 4)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status --account %s lacks %q:\n%s", west, want, out)
		}
	}
	for _, row := range [][]string{
		{"1", east, "active", "75.0%", "3"}, // then tokens, and headroom "available/500"
		{"2", west, "paused until " + untilS + " (insufficient_quota, quota)", "25.0%", "1"},
	} {
		if !containsRow(out, row) {
			t.Errorf("status lacks the pool row %q:\n%s", row, out)
		}
	}
	t.Logf("status --account %s:\n%s", west, out)
}

// containsRow reports whether a line of out holds cells, in order, each
// separated by at least two spaces (a tabwriter row).
func containsRow(out string, cells []string) bool {
	for _, l := range strings.Split(out, "\n") {
		fields := strings.Split(strings.TrimSpace(l), "  ")
		var got []string
		for _, f := range fields {
			if f = strings.TrimSpace(f); f != "" {
				got = append(got, f)
			}
		}
		if len(got) >= len(cells) && slices.Equal(got[:len(cells)], cells) {
			return true
		}
	}
	return false
}

func TestPoolState(t *testing.T) {
	until := "2026-11-27T16:00:00Z"
	tests := []struct {
		name string
		a    status.PoolAccount
		want string
	}{
		{"active", status.PoolAccount{}, "active"},
		{"paused for a while", status.PoolAccount{Pause: status.Pause{Paused: true, Until: &until, Reason: "insufficient_quota", Kind: "quota"}},
			"paused until 2026-11-27T16:00:00Z (insufficient_quota, quota)"},
		{"paused until resumed", status.PoolAccount{Pause: status.Pause{Paused: true, Reason: "manual pause", Kind: "manual"}},
			"paused until resumed (manual pause, manual)"},
		{"paused for models", status.PoolAccount{PausedModels: []status.ModelPause{{Model: "gpt-4o"}, {Model: "o3", Until: &until}}},
			"paused for models [gpt-4o o3]"},
		{"both", status.PoolAccount{Pause: status.Pause{Paused: true, Reason: "r", Kind: "auth"}, PausedModels: []status.ModelPause{{Model: "m"}}},
			"paused until resumed (r, auth); paused for models [m]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := poolState(tt.a); got != tt.want {
				t.Fatalf("poolState = %q, want %q", got, tt.want)
			}
		})
	}
}
