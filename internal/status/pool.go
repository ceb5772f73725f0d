package status

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

// Pool is one account pool (promptq worker --pool) in the report: its
// accounts by tier, each with its state, its headroom and its share of the
// pool's traffic today.
type Pool struct {
	// Date is the day the counts and shares are of (YYYY-MM-DD in the daily
	// budget's zone).
	Date string `json:"date"`
	// RequestsToday and TokensToday are the sums over the pool's accounts.
	RequestsToday int64 `json:"requests_today"`
	TokensToday   int64 `json:"tokens_today"`
	// Accounts are sorted by tier, then name.
	Accounts []PoolAccount `json:"accounts"`
}

// PoolAccount is one account of a pool.
type PoolAccount struct {
	Account string `json:"account"`
	Tier    int    `json:"tier"`
	// State is "active", "paused" (wholly: see Pause) or "paused_models"
	// (for the models in PausedModels alone).
	State        string       `json:"state"`
	Pause        Pause        `json:"pause"`
	PausedModels []ModelPause `json:"paused_models"`
	// Requests and Tokens are the headroom of the account's buckets.
	Requests Bucket `json:"requests"`
	Tokens   Bucket `json:"tokens"`
	// RequestsToday and TokensToday are the daily counters: every request
	// admitted today, reservations in flight included.
	RequestsToday int64 `json:"requests_today"`
	TokensToday   int64 `json:"tokens_today"`
	// ShareToday is RequestsToday / the pool's RequestsToday; null while
	// the pool has served nothing today.
	ShareToday *float64 `json:"share_today"`
}

// ModelPause is an account's pause for one model alone.
type ModelPause struct {
	Model string  `json:"model"`
	Until *string `json:"until"` // RFC 3339; null: until resumed
}

// Pool account states.
const (
	StateActive       = "active"
	StatePaused       = "paused"
	StatePausedModels = "paused_models"
)

// PoolMember is an account of a pool as its workers registered it.
type PoolMember struct {
	Account string
	Tier    int
}

// ReadPools returns the members of every pool workers have registered, by
// pool name, each sorted by tier then account.
func ReadPools(ctx context.Context, rdb redis.UniversalClient) (map[string][]PoolMember, error) {
	names, err := rdb.SMembers(ctx, keys.Pools()).Result()
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	if len(names) > 0 {
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, n := range names {
				cmds[i] = p.HGetAll(ctx, keys.Pool(n))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read pools: %w", err)
		}
	}
	out := make(map[string][]PoolMember, len(names))
	for i, n := range names {
		var ms []PoolMember
		for a, tier := range cmds[i].Val() {
			t, _ := strconv.Atoi(tier)
			ms = append(ms, PoolMember{Account: a, Tier: max(t, 1)})
		}
		if len(ms) == 0 {
			continue
		}
		slices.SortFunc(ms, func(x, y PoolMember) int {
			return cmp.Or(cmp.Compare(x.Tier, y.Tier), cmp.Compare(x.Account, y.Account))
		})
		out[n] = ms
	}
	return out, nil
}

// AccountRead is what a report has already read of an account, so that
// CollectPools does not read it again.
type AccountRead struct {
	Record   pausegate.Record // as the gate stored it
	Pause    Pause            // NewPause of Record
	Models   []pausegate.ModelPause
	Snapshot quota.Snapshot
}

// ReadAccount reads account's pause, model pauses and quota snapshot.
func ReadAccount(ctx context.Context, gate *pausegate.Gate, lim *quota.Limiter, account string, now time.Time) (AccountRead, error) {
	rec, active, err := gate.Check(ctx, account)
	if err != nil {
		return AccountRead{}, err
	}
	models, err := gate.ModelPauses(ctx, account)
	if err != nil {
		return AccountRead{}, err
	}
	snap, err := lim.Snapshot(ctx, account)
	if err != nil {
		return AccountRead{}, err
	}
	return AccountRead{Record: rec, Pause: NewPause(account, rec, active, now), Models: models, Snapshot: snap}, nil
}

// CollectPools builds the pool section for the pools that hold any of
// accounts, every member included (a share needs the whole pool). Members
// in known are not read again; the others are read through gate and lim.
func CollectPools(ctx context.Context, rdb redis.UniversalClient, gate *pausegate.Gate, lim *quota.Limiter,
	accounts []string, known map[string]AccountRead, now time.Time) (map[string]Pool, error) {
	pools, err := ReadPools(ctx, rdb)
	if err != nil {
		return nil, err
	}
	out := map[string]Pool{}
	for name, members := range pools {
		if !slices.ContainsFunc(members, func(m PoolMember) bool { return slices.Contains(accounts, m.Account) }) {
			continue
		}
		reads := make([]AccountRead, len(members))
		for i, m := range members {
			r, ok := known[m.Account]
			if !ok {
				if r, err = ReadAccount(ctx, gate, lim, m.Account, now); err != nil {
					return nil, fmt.Errorf("pool %s: %w", name, err)
				}
			}
			reads[i] = r
		}
		out[name] = NewPool(members, reads)
	}
	return out, nil
}

// NewPool renders a pool from its members and what was read of each (in
// the same order).
func NewPool(members []PoolMember, reads []AccountRead) Pool {
	p := Pool{Accounts: make([]PoolAccount, 0, len(members))}
	for i, m := range members {
		r := reads[i]
		d := r.Snapshot.Daily
		p.Date = cmp.Or(p.Date, d.Date)
		p.RequestsToday += d.Requests
		p.TokensToday += d.Tokens
		pa := PoolAccount{Account: m.Account, Tier: m.Tier, State: StateActive, Pause: r.Pause,
			PausedModels: make([]ModelPause, 0, len(r.Models)),
			Requests:     newBucket(r.Snapshot.Requests), Tokens: newBucket(r.Snapshot.Tokens),
			RequestsToday: d.Requests, TokensToday: d.Tokens}
		for _, mp := range r.Models {
			var until *string
			if !mp.Until.IsZero() {
				until = ptr(mp.Until.UTC().Format(time.RFC3339))
			}
			pa.PausedModels = append(pa.PausedModels, ModelPause{Model: mp.Model, Until: until})
		}
		switch {
		case r.Pause.Paused:
			pa.State = StatePaused
		case len(pa.PausedModels) > 0:
			pa.State = StatePausedModels
		}
		p.Accounts = append(p.Accounts, pa)
	}
	for i := range p.Accounts {
		if p.RequestsToday > 0 {
			p.Accounts[i].ShareToday = ptr(float64(p.Accounts[i].RequestsToday) / float64(p.RequestsToday))
		}
	}
	return p
}
