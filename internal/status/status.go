package status

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

// Queue is one asynq queue in the report.
type Queue struct {
	Pending   int  `json:"pending"`
	Active    int  `json:"active"`
	Scheduled int  `json:"scheduled"`
	Retry     int  `json:"retry"`
	Archived  int  `json:"archived"`
	Completed int  `json:"completed"`
	Paused    bool `json:"paused"`
	// Throughput is the observed completion rate and the backlog's ETA.
	Throughput *Throughput `json:"throughput,omitempty"`
}

// Pause is the pause state of one account (or the summary of all).
type Pause struct {
	Paused bool    `json:"paused"`
	Until  *string `json:"until"`
	Reason string  `json:"reason"`
	Kind   string  `json:"kind,omitempty"`
	SetBy  string  `json:"set_by,omitempty"`
	// RemainingMs is the time left in milliseconds; null when not paused
	// or paused until resumed.
	RemainingMs *int64 `json:"remaining_ms"`
	Account     string `json:"account,omitempty"`
	// SharedQueues are the account's queues left running during its pause
	// because other active accounts consume them: the pause record alone
	// holds this account's workers there.
	SharedQueues []string `json:"shared_queues,omitempty"`
}

// Report is the whole status: queues by name, the first active pause (or an
// asynq queue paused by hand), and pause and quota per account. Queues,
// Pause and Quota stay at the top level: other services read them.
type Report struct {
	Queues   map[string]Queue `json:"queues"`
	Pause    Pause            `json:"pause"`
	Accounts map[string]Pause `json:"accounts"`
	Quota    map[string]Quota `json:"quota"`
	// Pools are the account pools that hold any of the report's accounts,
	// by pool name, each with every member ({} when there are none).
	Pools map[string]Pool `json:"pools"`
	// Snapshots are the quota snapshots Quota renders, for the text report.
	Snapshots map[string]quota.Snapshot `json:"-"`
}

// NewPause is the pause state of account from its record (active: in force
// at now).
func NewPause(account string, rec pausegate.Record, active bool, now time.Time) Pause {
	ps := Pause{Paused: active, Account: account}
	if active {
		ps.Reason, ps.Kind, ps.SetBy = rec.Reason, string(rec.Kind), rec.SetBy
		if !rec.Until.IsZero() {
			s := rec.Until.UTC().Format(time.RFC3339)
			ps.Until = &s
			ps.RemainingMs = ptr(ceilMs(rec.Remaining(now)))
		}
	}
	return ps
}

// Collect reads the report for accounts from Redis through asynq's inspector,
// the pause gate and the quota limiter (with their default configs).
func Collect(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, accounts []string) (*Report, error) {
	return CollectWith(ctx, rdb, insp, accounts, Options{})
}

// CollectWith is Collect with options for the throughput estimate.
func CollectWith(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, accounts []string, o Options) (*Report, error) {
	rep := &Report{Queues: map[string]Queue{}, Accounts: map[string]Pause{}, Quota: map[string]Quota{},
		Pools: map[string]Pool{}, Snapshots: map[string]quota.Snapshot{}}
	names, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	for _, q := range names {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			continue
		}
		qs := Queue{Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled,
			Retry: info.Retry, Archived: info.Archived, Completed: info.Completed, Paused: info.Paused}
		qs.Throughput = throughput(insp, q, qs, time.Now(), o)
		rep.Queues[q] = qs
	}
	gate, err := pausegate.New(rdb, pausegate.Config{})
	if err != nil {
		return nil, err
	}
	lim, err := quota.New(rdb, quota.Config{})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	// A queue is held while every account serving it is paused.
	held, sts, err := holds(ctx, gate, accounts)
	if err != nil {
		return nil, err
	}
	known := make(map[string]AccountRead, len(accounts))
	for i, a := range accounts {
		rec, active := sts[i].Record, sts[i].Active
		ps := NewPause(a, rec, active, now)
		ps.SharedQueues = sts[i].SharedQueues
		rep.Accounts[a] = ps
		if ps.Paused && !rep.Pause.Paused {
			rep.Pause = ps
		}
		snap, err := lim.Snapshot(ctx, a)
		if err != nil {
			continue
		}
		rep.Quota[a] = NewQuota(snap)
		rep.Snapshots[a] = snap
		models, err := gate.ModelPauses(ctx, a)
		if err != nil {
			return nil, err
		}
		known[a] = AccountRead{Record: rec, Pause: ps, Models: models, Snapshot: snap}
	}
	if rep.Pools, err = CollectPools(ctx, rdb, gate, lim, accounts, known, now); err != nil {
		return nil, err
	}
	for q, qs := range rep.Queues {
		if qs.Throughput == nil {
			continue
		}
		h, ok := held[q]
		switch {
		case ok:
			qs.Throughput.applyHold(h, now)
		case qs.Paused: // paused by hand in asynqmon: until someone unpauses it
			qs.Throughput.applyHold(hold{reason: "asynq queue paused"}, now)
		}
	}
	if !rep.Pause.Paused {
		for _, q := range rep.Queues {
			if q.Paused {
				rep.Pause = Pause{Paused: true, Reason: "asynq queue paused"}
				break
			}
		}
	}
	return rep, nil
}
