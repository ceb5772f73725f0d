package pausegate

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

var (
	//go:embed lua/pause.lua
	pauseLua    string
	pauseScript = redis.NewScript(nowLua + pauseLua)
)

// PauseRequest asks for a pause.
type PauseRequest struct {
	// Until is when work may resume. Zero means indefinite for KindManual and
	// now + Config.DefaultPause for every other kind.
	Until  time.Time
	Reason string
	Kind   Kind // required, e.g. KindQuota or KindManual
}

// Pause pauses account everywhere, or extends its current pause: the later
// until wins and an indefinite pause beats any finite one, so a pause is never
// shortened (end one with Resume). It returns the effective record. Pauses
// longer than Config.ShortPause also pause the account's asynq queues, those
// that no other active account consumes (see Tick).
func (g *Gate) Pause(ctx context.Context, account string, req PauseRequest) (Record, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return Record{}, err
	}
	if req.Kind == "" {
		return Record{}, errors.New("pausegate: PauseRequest.Kind is empty")
	}
	now := g.cfg.Clock.Now()
	// The script adds the length to Redis's clock: Until is turned into a
	// length on the clock it was computed with (the caller's), so a wrong
	// caller clock neither shortens nor lengthens the pause.
	var forMs int64
	switch {
	case !req.Until.IsZero():
		// Rounded up: the pause never ends before the caller's Until.
		forMs = int64((req.Until.Sub(now) + time.Millisecond - 1) / time.Millisecond)
		if forMs <= 0 {
			forMs = -1 // over already: writes nothing
		}
	case req.Kind != KindManual:
		forMs = g.cfg.DefaultPause.Milliseconds()
	}
	res, err := pauseScript.Run(ctx, g.rdb, []string{keys.Pause(account)},
		forMs, req.Reason, string(req.Kind), g.cfg.SetBy, clock.ScriptNow(g.cfg.Clock), RecordGrace.Milliseconds()).StringSlice()
	if err != nil {
		return Record{}, fmt.Errorf("pausegate: pause %s: %w", account, err)
	}
	rec, _, _ := recordFromFields(account, map[string]string{
		"until": res[0], "reason": res[1], "kind": res[2], "set_by": res[3], "set_at": res[4],
	})
	changed := res[5] == "1"
	g.setLocal(account, rec)
	if changed {
		g.log.Info().Str("account", account).Str("kind", string(rec.Kind)).Str("reason", rec.Reason).
			Time("until", rec.Until).Msg("account paused")
		g.publish(ctx, account, Event{Type: EventPause, UntilMs: rec.untilMs(), Reason: rec.Reason, Kind: rec.Kind})
	}
	if _, err := g.reconcile(ctx, account, rec.Remaining(now) > g.cfg.ShortPause, changed); err != nil {
		return rec, err
	}
	return rec, nil
}

// Check reads account's pause record from Redis and reports whether it is
// active now. It also refreshes the local view.
func (g *Gate) Check(ctx context.Context, account string) (Record, bool, error) {
	rec, _, err := g.read(ctx, account)
	if err != nil {
		return Record{}, false, err
	}
	g.setLocal(account, rec)
	return rec, rec.Active(g.cfg.Clock.Now()), nil
}

// Allow returns nil when account may start a request, or a *PausedError
// (matching ErrPaused) when it is paused. It reads Redis.
func (g *Gate) Allow(ctx context.Context, account string) error {
	rec, active, err := g.Check(ctx, account)
	if err != nil || !active {
		return err
	}
	return &PausedError{Record: rec, RetryAfter: rec.Remaining(g.cfg.Clock.Now())}
}
