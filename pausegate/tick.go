package pausegate

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

var (
	//go:embed lua/clear.lua
	clearLua    string
	clearScript = redis.NewScript(nowLua + clearLua)

	//go:embed lua/done.lua
	doneLua    string
	doneScript = redis.NewScript(doneLua)
)

// Tick is one round of the periodic check for account. An expired record is
// cleared by exactly one gate (compare-and-clear on the until it read), which
// then unpauses the queues and announces the resume. Otherwise Tick
// reconciles asynq's pause state of the account's queues with its record:
//   - while a long pause is active, the queues are paused (covering a gate
//     that died between writing the record and pausing them), except those
//     another active account consumes: there the record alone gates the
//     account's workers (Shared);
//   - without an active long pause, every queue the gate paused for the
//     account is unpaused (a resume that raced a pause, a record that
//     expired with nobody to unpause);
//   - a queue an operator paused is never touched, and one the gate paused
//     that an operator resumed (asynqmon) during the pause counts as an
//     operator resume of the account: logged, and the record is cleared.
//
// It refreshes the local view.
func (g *Gate) Tick(ctx context.Context, account string) error {
	rec, rawUntil, err := g.read(ctx, account)
	if err != nil {
		return err
	}
	g.setLocal(account, rec)
	now := g.cfg.Clock.Now()
	if rec.present && !rec.Active(now) {
		won, err := g.autoResume(ctx, account, rawUntil, now)
		if err != nil || !won {
			return err
		}
		g.log.Info().Str("account", account).Str("kind", string(rec.Kind)).Msg("pause expired, account resumed")
		return nil
	}
	res, err := g.reconcile(ctx, account, rec.Remaining(now) > g.cfg.ShortPause, false)
	if len(res.resumed) > 0 {
		g.log.Warn().Str("account", account).Strs("queues", res.resumed).Str("kind", string(rec.Kind)).Str("reason", rec.Reason).
			Msg("a queue the gate paused was resumed by an operator (asynqmon) during the pause: the account is resumed")
		_, rerr := g.resume(ctx, account, "operator unpaused queue "+strings.Join(res.resumed, ","))
		err = errors.Join(err, rerr)
	}
	return err
}

// autoResume claims the expired record holding rawUntil and, if this gate
// wins, unpauses the queues, deletes the record and publishes the resume.
func (g *Gate) autoResume(ctx context.Context, account, rawUntil string, now time.Time) (bool, error) {
	token := g.cfg.SetBy + ":" + randHex()
	won, err := clearScript.Run(ctx, g.rdb, []string{keys.Pause(account)},
		rawUntil, clock.ScriptNow(g.cfg.Clock), token, ClaimLease.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("pausegate: clear %s: %w", account, err)
	}
	if won != 1 {
		return false, nil
	}
	if _, err := g.reconcile(ctx, account, false, false); err != nil {
		// The claim stays; another gate retries after ClaimLease.
		return true, err
	}
	deleted, err := doneScript.Run(ctx, g.rdb, []string{keys.Pause(account)}, token).Int()
	if err != nil {
		return true, fmt.Errorf("pausegate: finish resume %s: %w", account, err)
	}
	if deleted != 1 {
		// A new pause replaced the record while we unpaused: put its queues
		// back if it is long.
		rec, _, err := g.read(ctx, account)
		if err != nil {
			return true, err
		}
		g.setLocal(account, rec)
		_, err = g.reconcile(ctx, account, rec.Remaining(g.cfg.Clock.Now()) > g.cfg.ShortPause, true)
		return true, err
	}
	g.publish(ctx, account, Event{Type: EventResume})
	return true, nil
}
