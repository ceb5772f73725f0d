package pausegate

import (
	"context"
	_ "embed"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

var (
	//go:embed lua/pause_model.lua
	pauseModelLua    string
	pauseModelScript = redis.NewScript(nowLua + pauseModelLua)
)

// ModelPause is an account's pause for one model alone.
type ModelPause struct {
	Model string
	Until time.Time // zero = indefinite
}

// PauseModel pauses account for model alone until until (zero = for
// Config.DefaultPause), extending a pause already in force, never
// shortening it: a pool stops routing that model to the account (the
// provider answered model_not_found) while its other models, and the pool's
// other accounts, carry on. It does not pause asynq queues. Resume ends it
// with the account's other pauses.
func (g *Gate) PauseModel(ctx context.Context, account, model string, until time.Time, reason string) (time.Time, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return time.Time{}, err
	}
	if model == "" {
		return time.Time{}, fmt.Errorf("pausegate: pause %s: empty model", account)
	}
	forMs := g.cfg.DefaultPause.Milliseconds()
	if !until.IsZero() {
		forMs = max(1, int64((until.Sub(g.cfg.Clock.Now())+time.Millisecond-1)/time.Millisecond))
	}
	res, err := pauseModelScript.Run(ctx, g.rdb, []string{keys.PauseModels(account)},
		model, forMs, clock.ScriptNow(g.cfg.Clock), RecordGrace.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		return time.Time{}, fmt.Errorf("pausegate: pause %s for %s: %v %w", account, model, res, err)
	}
	var effective time.Time
	if res[0] > 0 {
		effective = time.UnixMilli(res[0])
	}
	if res[1] == 1 {
		g.log.Info().Str("account", account).Str("model", model).Str("reason", reason).
			Time("until", effective).Msg("account paused for one model")
	}
	return effective, nil
}

// ModelPauses lists account's model pauses in force, by model name.
func (g *Gate) ModelPauses(ctx context.Context, account string) ([]ModelPause, error) {
	m, err := g.rdb.HGetAll(ctx, keys.PauseModels(account)).Result()
	if err != nil {
		return nil, fmt.Errorf("pausegate: model pauses of %s: %w", account, err)
	}
	now := g.cfg.Clock.Now()
	var out []ModelPause
	for model, v := range m {
		u, _ := strconv.ParseInt(v, 10, 64)
		p := ModelPause{Model: model}
		if u > 0 {
			p.Until = time.UnixMilli(u)
			if !p.Until.After(now) {
				continue
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Model < out[j].Model })
	return out, nil
}
