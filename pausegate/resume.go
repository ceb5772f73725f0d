package pausegate

import (
	"context"
	"errors"
	"fmt"

	"github.com/promptq/promptq/internal/keys"
)

// Resume ends account's pause at once (manual resume): it deletes the record
// whatever it holds, unpauses the queues the gate paused for the account and
// announces the resume. A queue an operator paused (asynqmon) stays paused.
// It reports whether anything was paused (an active record or a queue the
// gate held).
func (g *Gate) Resume(ctx context.Context, account string) (bool, error) {
	return g.resume(ctx, account, "admin")
}

// resume is Resume; by says who asked, for the log.
func (g *Gate) resume(ctx context.Context, account, by string) (bool, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return false, err
	}
	rec, _, err := g.read(ctx, account)
	if err != nil {
		return false, err
	}
	models, _ := g.rdb.HLen(ctx, keys.PauseModels(account)).Result()
	if err := g.rdb.Del(ctx, keys.Pause(account), keys.PauseModels(account)).Err(); err != nil {
		return false, fmt.Errorf("pausegate: resume %s: %w", account, err)
	}
	res, err := g.reconcile(ctx, account, false, false)
	unpaused := res.unpaused
	was := rec.Active(g.cfg.Clock.Now()) || unpaused > 0 || models > 0
	g.setLocal(account, Record{})
	released := 0
	if rr, ok := g.cfg.Queues.(RetryRunner); ok && was {
		queues, qerr := g.rdb.SMembers(ctx, keys.Queues(account)).Result()
		err = errors.Join(err, qerr)
		for _, q := range queues {
			n, rerr := rr.RunAllRetryTasks(q)
			released += n
			if rerr != nil && !isAlready(rerr, "not found") {
				err = errors.Join(err, rerr)
			}
		}
	}
	if was {
		g.log.Info().Str("account", account).Str("by", by).Int("queues_unpaused", unpaused).Int("retries_released", released).Msg("account resumed manually")
		g.publish(ctx, account, Event{Type: EventResume})
	}
	return was, err
}

// ResumeAll resumes every registered account that is paused (by its record
// or by a paused queue) and returns their names.
func (g *Gate) ResumeAll(ctx context.Context) ([]string, error) {
	accounts, err := Accounts(ctx, g.rdb)
	if err != nil {
		return nil, fmt.Errorf("pausegate: list accounts: %w", err)
	}
	var resumed []string
	var errs []error
	for _, a := range accounts {
		was, err := g.Resume(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if was {
			resumed = append(resumed, a)
		}
	}
	return resumed, errors.Join(errs...)
}
