package quota

import (
	"context"
	"fmt"
	"time"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

// RampMinFraction is the lowest fraction of its limits a slow_down ramp cuts
// an account to, however many slow_downs arrive: at the default growth it is
// back at the full limit within two hours.
const RampMinFraction = 0.05

// SlowDown cuts account's admitted rate after the provider answered
// slow_down (a 503 asking to reduce the request rate and then ramp up
// slowly): the fraction of its limits the account may use drops to
// Config.RampCut times the current one (never below RampMinFraction), then
// grows by Config.RampGrowth per Config.RampInterval back to 1. Reserve and
// Settle apply the fraction to both the request and the token limit.
func (l *Limiter) SlowDown(ctx context.Context, account string) error {
	if err := keys.ValidateAccount(account); err != nil {
		return fmt.Errorf("quota: %w", err)
	}
	err := slowdownScript.Run(ctx, l.rdb, []string{keys.Limits(account)},
		clock.ScriptNow(l.cfg.Clock), l.cfg.RampCut, l.cfg.RampGrowth, l.cfg.RampInterval.Milliseconds(), RampMinFraction,
		SlowDownCooldown.Milliseconds(),
	).Err()
	if err != nil {
		return fmt.Errorf("quota: slow down %s: %w", account, err)
	}
	return nil
}

// SlowDownCooldown groups slow_downs into one incident: several workers
// answered 503 slow_down for the same burst, and cutting once per answer
// would drive the rate to the floor (seen in the bench: 6 answers cut it to
// 0.5^6). A slow_down this long after the last cut cuts again.
const SlowDownCooldown = 10 * time.Second
