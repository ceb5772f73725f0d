package status

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

// TestPoolSection: a pool of two accounts, one paused wholly, the other for
// one model, with requests admitted through the limiter: the report shows
// each member's tier, state, headroom and share of today's requests, the
// shares add up to 1, and a report of one member still holds the whole
// pool.
func TestPoolSection(t *testing.T) {
	r := testutil.NewRedis(t)
	ctx := context.Background()
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	pool, east, west := testutil.Name(t)+"-pool", testutil.Name(t)+"-east", testutil.Name(t)+"-west"
	registerPool(t, r.Client, pool, map[string]int{east: 1, west: 2})
	testutil.CleanupAccount(t, r.Client, east)
	testutil.CleanupAccount(t, r.Client, west)

	lim, err := quota.New(r.Client, quota.Config{RPM: 600, TPM: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	reserveRequests(t, lim, east, 3)
	reserveRequests(t, lim, west, 1)
	gate, err := pausegate.New(r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	if _, err := gate.Pause(ctx, west, pausegate.PauseRequest{Until: until, Reason: "insufficient_quota", Kind: pausegate.KindQuota}); err != nil {
		t.Fatal(err)
	}
	if _, err := gate.PauseModel(ctx, east, "gpt-4o", until, "model_not_found"); err != nil {
		t.Fatal(err)
	}

	rep, err := Collect(ctx, r.Client, insp, []string{east, west})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := rep.Pools[pool]
	if !ok || len(p.Accounts) != 2 {
		t.Fatalf("pools = %+v, want %s with two accounts", rep.Pools, pool)
	}
	if p.RequestsToday != 4 || p.Date != rep.Snapshots[east].Daily.Date {
		t.Fatalf("pool: %d requests today on %s, want 4 on %s", p.RequestsToday, p.Date, rep.Snapshots[east].Daily.Date)
	}
	e, w := p.Accounts[0], p.Accounts[1]
	if e.Account != east || e.Tier != 1 || w.Account != west || w.Tier != 2 {
		t.Fatalf("accounts by tier: %+v, %+v", e, w)
	}
	if e.State != StatePausedModels || len(e.PausedModels) != 1 || e.PausedModels[0].Model != "gpt-4o" || e.PausedModels[0].Until == nil || e.Pause.Paused {
		t.Errorf("east: %+v, want paused for gpt-4o alone", e)
	}
	if w.State != StatePaused || !w.Pause.Paused || w.Pause.Reason != "insufficient_quota" || w.Pause.Kind != string(pausegate.KindQuota) || len(w.PausedModels) != 0 {
		t.Errorf("west: %+v, want paused (insufficient_quota, quota)", w)
	}
	if e.RequestsToday != 3 || w.RequestsToday != 1 || e.ShareToday == nil || w.ShareToday == nil ||
		*e.ShareToday != 0.75 || *w.ShareToday != 0.25 {
		t.Fatalf("shares: east %d %v, west %d %v, want 3 0.75, 1 0.25", e.RequestsToday, e.ShareToday, w.RequestsToday, w.ShareToday)
	}
	if e.TokensToday != rep.Snapshots[east].Daily.Tokens || p.TokensToday != e.TokensToday+w.TokensToday || e.TokensToday == 0 {
		t.Errorf("tokens today: east %d (snapshot %d), pool %d", e.TokensToday, rep.Snapshots[east].Daily.Tokens, p.TokensToday)
	}
	if e.Requests.Limit == nil || *e.Requests.Limit != 500 || e.Tokens.Limit == nil || *e.Tokens.Limit != 30_000 {
		t.Errorf("east's headroom %+v / %+v, want the limits learned from headers", e.Requests, e.Tokens)
	}
	if !sameBucket(e.Requests, rep.Quota[east].Requests) || !sameBucket(e.Tokens, rep.Quota[east].Tokens) {
		t.Errorf("east's headroom %+v / %+v differs from its quota's %+v / %+v", e.Requests, e.Tokens, rep.Quota[east].Requests, rep.Quota[east].Tokens)
	}

	// One member's report holds the whole pool, with the same shares.
	one, err := Collect(ctx, r.Client, insp, []string{west})
	if err != nil {
		t.Fatal(err)
	}
	if got := one.Pools[pool]; len(got.Accounts) != 2 || *got.Accounts[0].ShareToday != 0.75 || got.Accounts[0].State != StatePausedModels {
		t.Fatalf("report of %s alone: %+v, want the whole pool", west, one.Pools)
	}
	// A report of accounts outside the pool has no pool.
	other := testutil.Name(t) + "-other"
	if none, err := Collect(ctx, r.Client, insp, []string{other}); err != nil || len(none.Pools) != 0 || none.Pools == nil {
		t.Fatalf("report of %s: pools %+v (%v), want {}", other, none.Pools, err)
	}
}

// sameBucket reports whether a and b hold the same figures.
func sameBucket(a, b Bucket) bool {
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.Limit, b.Limit) && eq(a.ResetInMs, b.ResetInMs) && a.Source == b.Source &&
		(a.Available == nil) == (b.Available == nil) && (a.Available == nil || *a.Available == *b.Available)
}

// TestNewPoolWithoutTraffic: before the pool's first request today every
// share is unknown (null), never 0 or NaN.
func TestNewPoolWithoutTraffic(t *testing.T) {
	p := NewPool([]PoolMember{{"a", 1}, {"b", 1}}, []AccountRead{{}, {}})
	for _, a := range p.Accounts {
		if a.ShareToday != nil || a.State != StateActive {
			t.Fatalf("%+v: want share null, active", a)
		}
	}
	p = NewPool([]PoolMember{{"a", 1}, {"b", 1}}, []AccountRead{
		{Snapshot: quota.Snapshot{Daily: quota.DailyState{Requests: 1}}}, {Snapshot: quota.Snapshot{Daily: quota.DailyState{Requests: 2}}}})
	if sum := *p.Accounts[0].ShareToday + *p.Accounts[1].ShareToday; math.Abs(sum-1) > 1e-12 {
		t.Fatalf("shares add up to %v", sum)
	}
}

// registerPool records pool as its workers do (keys.Pools,
// keys.Pool: account -> tier) and removes it when t ends.
func registerPool(t testing.TB, rdb *redis.Client, pool string, tiers map[string]int) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		rdb.SRem(ctx, keys.Pools(), pool)
		rdb.Del(ctx, keys.Pool(pool))
	})
	for a, tier := range tiers {
		if err := rdb.HSet(ctx, keys.Pool(pool), a, tier).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.SAdd(ctx, keys.Pools(), pool).Err(); err != nil {
		t.Fatal(err)
	}
}

// reserveRequests admits n requests for account through lim, so the
// daily counters move as a worker's would, and settles the first with
// rate-limit headers, so the account's limits are known.
func reserveRequests(t testing.TB, lim *quota.Limiter, account string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		d, err := lim.ReserveRequest(ctx, account, quota.Input{Chars: 40}, 100)
		if err != nil || !d.OK {
			t.Fatalf("reserve for %s: %+v %v", account, d, err)
		}
		if i > 0 {
			continue
		}
		info := quota.HeaderInfo{Requests: quota.Bucket{Limit: 500, Remaining: 499, Reset: 120 * time.Millisecond},
			Tokens: quota.Bucket{Limit: 30_000, Remaining: 29_960, Reset: 80 * time.Millisecond}, RetryAfter: -1}
		if err := lim.Settle(ctx, d.Reservation, info, &quota.Usage{InputTokens: 10, OutputTokens: 30}); err != nil {
			t.Fatal(err)
		}
	}
}
