package pausegate

import (
	"context"
	"encoding/json"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// publish announces ev on account's event channel.
func (g *Gate) publish(ctx context.Context, account string, ev Event) {
	b, _ := json.Marshal(ev)
	if err := g.rdb.Publish(ctx, keys.Events(account), b).Err(); err != nil {
		// Not fatal: every gate's Tick picks the change up within CheckInterval.
		g.log.Warn().Err(err).Str("account", account).Msg("publish pause event failed")
	}
}

// onMessage refreshes account's local view after an event. The record is
// re-read from Redis (events from several publishers may arrive out of
// order); if that fails the payload is used.
func (g *Gate) onMessage(ctx context.Context, account, payload string) {
	if account == "" {
		return
	}
	if _, _, err := g.Check(ctx, account); err == nil {
		return
	}
	var ev Event
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		g.log.Warn().Err(err).Str("account", account).Msg("bad pause event")
		return
	}
	rec := Record{}
	if ev.Type == EventPause {
		rec = Record{Account: account, Reason: ev.Reason, Kind: ev.Kind, present: true}
		if ev.UntilMs != 0 {
			rec.Until = time.UnixMilli(ev.UntilMs)
		}
	}
	g.setLocal(account, rec)
}
