package worker

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// settle closes a reservation. It runs even when the task's context has
// ended (a settle that never happens holds the reservation in flight for
// its whole TTL, and the cold-start probe with it); one that fails is
// retried in the background until Redis is back.
func (h *Handler) settle(ctx context.Context, res quota.Reservation, info quota.HeaderInfo, usage *quota.Usage, refund bool) {
	if !h.cfg.QuotaControl || res.ID == "" {
		return
	}
	if usage != nil && usage.Bad() && h.badUsage.Add(1) == 1 {
		// Once per worker: a provider that sends garbage sends it on every
		// answer. The calibration counts every one (status: refused signals).
		h.log.Warn().Int64("input_tokens", usage.InputTokens).Int64("output_tokens", usage.OutputTokens).
			Int64("total_tokens", usage.TotalTokens).
			Msg("provider reported impossible usage (negative or absurd): ignored, the reservation's debit stands; logged once per worker")
	}
	p := pendingSettle{res: res, info: info, usage: usage, refund: refund}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := h.settleOnce(sctx, p); err != nil {
		h.redisLog.Error().Err(err).Msg("quota settle failed; retried once Redis answers")
		h.settles.add(p)
	}
}

func (h *Handler) settleOnce(ctx context.Context, p pendingSettle) error {
	lim := h.limFor(p.res.Account)
	if p.refund {
		return lim.Refund(ctx, p.res, p.info)
	}
	return lim.Settle(ctx, p.res, p.info, p.usage)
}

func (h *Handler) writeResult(t *asynq.Task, r tasks.Result) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if w := t.ResultWriter(); w != nil {
		_, err = w.Write(data)
	}
	return err
}

func stringMetadata(m map[string]any) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
			continue
		}
		b, _ := json.Marshal(v)
		out[k] = string(b)
	}
	return out
}

// logQuota writes a quota summary every QuotaLogEvery completed tasks, so
// the log shows headroom and today's use without a line per request.
func (h *Handler) logQuota(ctx context.Context, a *target) {
	n := h.done.Add(1)
	if !h.cfg.QuotaControl || h.cfg.QuotaLogEvery <= 0 || n%int64(h.cfg.QuotaLogEvery) != 0 {
		return
	}
	s, err := a.lim.Snapshot(ctx, a.name)
	if err != nil {
		h.log.Warn().Err(err).Msg("quota snapshot")
		return
	}
	h.log.Info().Str("account", a.name).Int64("completed", n).
		Int64("requests_limit", s.Requests.Limit).Float64("requests_available", s.Requests.Available).
		Int64("tokens_limit", s.Tokens.Limit).Float64("tokens_available", s.Tokens.Available).
		Int64("in_flight", s.InFlight).Int64("throttled_total", s.Throttled).
		Int64("daily_requests", s.Daily.Requests).Int64("daily_tokens", s.Daily.Tokens).
		Float64("estimate_bias", s.EstimateBias).Msg("quota summary")
}

// resultError is the error text kept in a result: the classification and the
// provider's own message (which c.Error() leaves out of logs).
func resultError(c *backoff.Error) string {
	if c.Message == "" || strings.Contains(c.Error(), c.Message) {
		return c.Error()
	}
	return c.Error() + ": " + c.Message
}
