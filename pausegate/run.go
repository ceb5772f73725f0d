package pausegate

import (
	"context"
	"fmt"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// Run keeps the local view of accounts current until ctx is done: it
// subscribes to their event channels, re-reads a record on each message and
// calls Tick for every account at start and every Config.CheckInterval. It
// returns nil when ctx is cancelled.
func (g *Gate) Run(ctx context.Context, accounts ...string) error {
	channels := make([]string, len(accounts))
	byChannel := make(map[string]string, len(accounts))
	for i, a := range accounts {
		if err := keys.ValidateAccount(a); err != nil {
			return err
		}
		channels[i] = keys.Events(a)
		byChannel[channels[i]] = a
	}
	ps := g.rdb.Subscribe(ctx, channels...)
	defer ps.Close()
	if len(channels) > 0 {
		// Wait for the subscription so no event published after Ready is lost.
		if _, err := ps.Receive(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pausegate: subscribe: %w", err)
		}
	}
	msgs := ps.Channel()

	defer func() {
		// No longer a consumer of the accounts' queues.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		for _, a := range accounts {
			_, _ = g.consumers(dctx, a, g.cfg.SetBy, 0)
		}
	}()
	tickAll := func() {
		for _, a := range accounts {
			if _, err := g.consumers(ctx, a, g.cfg.SetBy, g.consumerTTL()); err != nil && ctx.Err() == nil {
				g.log.Warn().Err(err).Str("account", a).Msg("consumer mark failed")
			}
			if err := g.Tick(ctx, a); err != nil && ctx.Err() == nil {
				g.log.Warn().Err(err).Str("account", a).Msg("pause check failed")
			}
		}
	}
	tickAll()
	g.readyOnce.Do(func() { close(g.ready) })

	ticker := time.NewTicker(g.cfg.CheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			tickAll()
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			g.onMessage(ctx, byChannel[m.Channel], m.Payload)
		}
	}
}
