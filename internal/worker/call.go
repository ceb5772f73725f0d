package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/answer"
	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// call is one provider call of a task: where it went, what it reserved and
// what came back.
type call struct {
	route  *target
	res    quota.Reservation
	estIn  int64 // input tokens the reservation counted
	owner  string
	resp   *provider.Response
	err    error
	info   quota.HeaderInfo // the response's rate-limit headers (Unknown when ignored)
	opened bool             // the provider opened a stream (and charged it)
	took   time.Duration
	now    time.Time // when the call ended, on the handler's clock

	// For adaptive concurrency.
	load    quota.LoadSignal // what the call says of the provider's load
	latency time.Duration
	ample   bool
}

// request is the provider request of a task.
func request(j *job) provider.Request {
	p := j.p
	req := provider.Request{
		Endpoint: p.EndpointName(), Model: p.Model, Instructions: p.Instructions,
		Text: p.Input.Text, MaxOutputTokens: p.MaxOutputTokens, Stream: p.Stream,
		Metadata: stringMetadata(p.Metadata), TaskID: j.taskID,
	}
	for _, m := range p.Input.Messages {
		req.Messages = append(req.Messages, provider.Message{Role: m.Role, Content: m.Content})
	}
	return req
}

// send claims the task and sends it to c.route's provider. done means the
// task ended without a call (its answer is stored already, or another
// attempt's call may still finish): err is then the task's end.
func (h *Handler) send(ctx context.Context, j *job, c *call) (done bool, err error) {
	// Claim the task: no other attempt calls the provider while this one's
	// call can still finish, and a task whose answer is stored is not paid
	// for twice.
	if h.answers != nil && j.taskID != "" {
		o, stored, cerr := h.claimTask(ctx, j.taskID, j.log)
		if cerr != nil || stored != nil {
			h.settle(ctx, c.res, quota.Unknown, nil, true)
		}
		switch {
		case cerr != nil:
			var w *backoff.Deferral
			if errors.As(cerr, &w) {
				j.log.Info().Str("reason", w.Reason).Msg("not calling the provider")
			}
			return true, cerr
		case stored != nil:
			j.log.Info().Msg("answer already stored; not calling the provider again")
			return true, h.writeAnswer(ctx, j.t, stored.data)
		}
		c.owner = o
	}

	// The call runs on a context of its own, bounded by the request
	// timeout: a Redis outage that outlasts asynq's lease cancels ctx, and
	// the call must not be cut (the provider may charge it all the same).
	// It ends early only when the worker stops.
	callCtx, cancelCall := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.RequestTimeout)
	defer cancelCall()
	stopCall := context.AfterFunc(h.life, cancelCall)
	defer stopCall()
	h.calls.Add(1)
	defer h.calls.Done()

	if p := j.p; p.EnqueuedAt != nil && j.retried == 0 && j.inline == 0 {
		queue, _ := asynq.GetQueueName(ctx)
		h.cfg.Metrics.taskStarted(queue, time.Since(*p.EnqueuedAt)) // the producer's wall clock
	}
	var onOpen func(http.Header)
	var opened atomic.Bool // the provider admitted a stream (and charged it)
	if j.p.Stream && h.cfg.QuotaControl && !h.cfg.IgnoreHeaders && c.res.ID != "" {
		// A stream's headers arrive long before its usage: feed them to the
		// shared buckets at once; the settle at the end closes the reservation.
		onOpen = func(hdr http.Header) {
			opened.Store(true)
			if err := c.route.lim.Sync(callCtx, c.res, quota.ParseHeaders(hdr, h.cfg.Clock.Now())); err != nil {
				h.redisLog.Error().Err(err).Msg("quota sync at stream open")
			}
		}
	}
	req := request(j)
	start := time.Now()
	c.resp, c.err = c.route.client.Call(callCtx, req, onOpen)
	c.took, c.now, c.opened = time.Since(start), h.cfg.Clock.Now(), opened.Load()
	c.info = quota.ParseHeaders(c.resp.Header, c.now)
	if h.cfg.IgnoreHeaders {
		c.info = quota.Unknown
	}
	if c.err == nil {
		c.load = quota.LoadHealthy
		// Latency per output token: raw LLM latency mostly tracks length.
		if u := c.resp.Usage; u != nil && u.OutputTokens > 0 {
			c.latency = c.took / time.Duration(u.OutputTokens)
		}
	}
	return false, nil
}

// succeeded keeps the paid answer: spool, settle, store, result.
func (h *Handler) succeeded(ctx context.Context, j *job, c *call) error {
	p, resp := j.p, c.resp
	fin := h.cfg.Clock.Now()
	r := tasks.Result{
		ID: p.ID, OutputText: resp.Text, Attempts: j.retried + 1, Model: resp.Model,
		Endpoint: p.EndpointName(), ResponseID: resp.ResponseID, Metadata: p.Metadata,
		StartedAt: &j.started, FinishedAt: &fin, Account: c.route.name,
	}
	h.cfg.Metrics.providerCall(p.EndpointName(), p.Model, "", c.took)
	var usage *quota.Usage
	if u := resp.Usage; u != nil {
		h.cfg.Metrics.usage(p.Model, u.InputTokens, u.OutputTokens)
		r.Usage = tasks.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, TotalTokens: u.TotalTokens}
		usage = &quota.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, TotalTokens: u.TotalTokens}
	}
	// The provider has answered and been paid: the answer is kept until
	// Redis has it, and the task is not sent again.
	data, err := answerData(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if h.answers != nil && j.taskID != "" {
		c.owner = "" // the claim becomes the answer
		if h.spool != nil {
			if err := h.spool.Add(answer.Entry{Account: h.cfg.Account, TaskID: j.taskID, Answer: data, At: time.Now()}); err != nil {
				j.log.Error().Err(err).Msg("spool file not written; the answer is kept in memory")
			}
		}
	}
	h.settle(ctx, c.res, c.info, usage, false)
	if h.answers != nil && j.taskID != "" {
		err = h.storeAnswer(ctx, j.t, j.taskID, data, j.log)
	} else {
		err = h.writeAnswer(ctx, j.t, data)
	}
	if err != nil {
		return err
	}
	h.logQuota(ctx, c.route)
	j.log.Debug().Str("account", c.route.name).Int64("input_tokens", r.Usage.InputTokens).
		Int64("output_tokens", r.Usage.OutputTokens).Msg("task completed")
	return nil
}
