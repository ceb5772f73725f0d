package pausegate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// Status describes an account's pause for admin tools.
type Status struct {
	Record    Record
	Active    bool
	Remaining time.Duration // 0 when inactive, Indefinite when without end
	Queues    []string      // queues registered for the account
	// PausedQueues lists the paused queues among Queues; nil unless
	// Config.Queues implements QueueStater.
	PausedQueues []string
	// HeldQueues lists the queues the gate paused for the account (it
	// unpauses only these).
	HeldQueues []string
	// SharedQueues lists, during a long pause, the account's queues left
	// running because another active account consumes them: there the
	// record alone gates the account's workers.
	SharedQueues []string
}

// Status reports account's pause as stored in Redis.
func (g *Gate) Status(ctx context.Context, account string) (Status, error) {
	rec, active, err := g.Check(ctx, account)
	if err != nil {
		return Status{}, err
	}
	qs, err := g.rdb.SMembers(ctx, keys.Queues(account)).Result()
	if err != nil {
		return Status{}, fmt.Errorf("pausegate: list queues: %w", err)
	}
	slices.Sort(qs)
	now := g.cfg.Clock.Now()
	st := Status{Record: rec, Active: active, Remaining: rec.Remaining(now), Queues: qs}
	held, err := g.rdb.HKeys(ctx, keys.GateQueues(account)).Result()
	if err != nil {
		return st, fmt.Errorf("pausegate: read held queues: %w", err)
	}
	slices.Sort(held)
	st.HeldQueues = held
	if st.Remaining > g.cfg.ShortPause {
		for _, q := range qs {
			others, err := g.activeConsumers(ctx, account, q)
			if err != nil {
				return st, err
			}
			if len(others) > 0 {
				st.SharedQueues = append(st.SharedQueues, q)
			}
		}
	}
	if s, ok := g.cfg.Queues.(QueueStater); ok {
		st.PausedQueues = []string{}
		for _, q := range qs {
			p, err := s.QueuePaused(q)
			if errors.Is(err, ErrQueueUnknown) {
				continue
			}
			if err != nil {
				return st, fmt.Errorf("pausegate: queue %s state: %w", q, err)
			}
			if p {
				st.PausedQueues = append(st.PausedQueues, q)
			}
		}
	}
	return st, nil
}
