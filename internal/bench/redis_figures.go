package bench

import (
	"cmp"
	"context"

	"github.com/redis/go-redis/v9"
)

// redisMeter measures the Redis commands of one run: INFO commandstats
// (commands executed, Lua's included) before and after, and a MONITOR
// connection (commands sent, by owner).
type redisMeter struct {
	mon    *monitor
	before commandStats
}

func (e *runEnv) startMeter(ctx context.Context) (*redisMeter, error) {
	mon, err := startMonitor(ctx, e.rdb.Options())
	if err != nil {
		return nil, err
	}
	before, err := readCommandStats(ctx, e.rdb)
	if err != nil {
		_, _ = mon.stop()
		return nil, err
	}
	return &redisMeter{mon: mon, before: before}, nil
}

// stop ends the measurement: the commands executed since start, and the
// commands sent by owner.
func (m *redisMeter) stop(ctx context.Context, rdb *redis.Client) (commandStats, map[string]map[string]int64, error) {
	after, err := readCommandStats(ctx, rdb)
	sent, merr := m.mon.stop()
	if err = cmp.Or(err, merr); err != nil {
		return nil, nil, err
	}
	return after.sub(m.before), sent, nil
}

// setCommands fills r's Redis figures from a redisMeter's, leaving out the
// bench's own commands: INFO, and the zcards ZCARD polls of its watch.
func (r *RunResult) setCommands(d commandStats, sent map[string]map[string]int64, zcards int64) {
	delete(d, "info")
	d["zcard"] -= zcards
	if d["zcard"] <= 0 {
		delete(d, "zcard")
	}
	r.Commands = d
	r.CommandsTotal = d.total()
	r.CommandsPerTask = float64(r.CommandsTotal) / float64(r.Tasks)
	r.EvalshaPerTask = float64(d["evalsha"]+d["eval"]) / float64(r.Tasks)

	delete(sent[OwnerOther], "info")
	if a := sent[OwnerAsynq]; a != nil {
		a["zcard"] -= zcards
		if a["zcard"] <= 0 {
			delete(a, "zcard")
		}
	}
	r.Sent, r.SentPerTask = sent, map[string]float64{}
	for _, owner := range []string{OwnerPromptq, OwnerAsynq, OwnerOther} {
		n := commandStats(sent[owner]).total()
		r.SentTotal += n
		r.SentPerTask[owner] = float64(n) / float64(r.Tasks)
	}
	r.PromptqEvalshaPerTask = float64(sent[OwnerPromptq]["evalsha"]+sent[OwnerPromptq]["eval"]) / float64(r.Tasks)
}
