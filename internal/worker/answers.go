package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/answer"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// The success path keeps a paid answer until Redis has it (see package
// answer): the answer goes to the spool first, then to the task's
// idempotency record (retried with backoff for as long as Redis is away),
// then to asynq's result. Before calling, a task is claimed, so that no
// other attempt calls the provider while this one's call can still finish.

// newOwnerID names this worker process in claim owners.
func newOwnerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// answered is an answer found in the idempotency record.
type answered struct{ data []byte }

// claimTask claims taskID for one provider call. It returns the owner of the
// claim, or the stored answer (the task is done: do not call), or a wait
// (another attempt's call can still finish).
func (h *Handler) claimTask(ctx context.Context, taskID string, log zerolog.Logger) (string, *answered, error) {
	owner := answer.Owner(h.ownerID, h.claimSeq.Add(1))
	for range 3 {
		c, err := h.answers.Claim(ctx, taskID, owner)
		if err != nil {
			return "", nil, err
		}
		switch c.State {
		case answer.Mine:
			return owner, nil, nil
		case answer.Done:
			return "", &answered{c.Answer}, nil
		}
		n, err := h.answers.Takeover(ctx, taskID, c.Owner, owner)
		if err != nil {
			return "", nil, err
		}
		switch n {
		case answer.TakenOver:
			log.Warn().Str("dead_owner", c.Owner).Msg("took over the claim of a worker that is gone")
			return owner, nil, nil
		case answer.OwnerAlive:
			return "", nil, &backoff.Deferral{Delay: min(max(c.Remaining, time.Second), 15*time.Second),
				Reason: "another attempt's provider call is still running"}
		case answer.OwnerSuspect:
			return "", nil, &backoff.Deferral{Delay: answer.TakeoverGrace + time.Second,
				Reason: "the worker calling the provider for this task looks gone"}
		}
		// ClaimChanged: look again.
	}
	return "", nil, &backoff.Deferral{Delay: time.Second, Reason: "idempotency record changing"}
}

// releaseClaim gives the claim up after a failed call, so the retry may call.
func (h *Handler) releaseClaim(ctx context.Context, taskID, owner string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.answers.Release(ctx, taskID, owner); err != nil {
		h.redisLog.Warn().Err(err).Msg("release answer claim (it expires by itself)")
	}
}

// storeAnswer writes a spooled answer to Redis, then asynq's result.
func (h *Handler) storeAnswer(ctx context.Context, t *asynq.Task, taskID string, data []byte, log zerolog.Logger) error {
	var b answer.Backoff
	start := time.Now()
	for {
		var err error
		if h.spool != nil {
			err = h.spool.Store(ctx, taskID)
		} else {
			err = h.answers.Put(ctx, taskID, data)
		}
		if err == nil {
			break
		}
		h.redisLog.Warn().Err(err).Msg("answer not stored yet (Redis away?); retrying")
		select {
		case <-ctx.Done():
			// The lease is lost or the worker stops: the spool keeps the
			// answer and its flusher stores it once Redis is back.
			if h.spool != nil {
				h.spool.Kick()
			}
			return &backoff.Deferral{Delay: time.Second, Reason: "answer spooled, stored once Redis is back"}
		case <-time.After(b.Next()):
		}
	}
	if time.Since(start) > time.Second {
		log.Info().Int64("after_ms", time.Since(start).Milliseconds()).Msg("answer stored after Redis came back")
	}
	return h.writeAnswer(ctx, t, data)
}

// writeAnswer writes a stored answer as asynq's result. The answer is in
// Redis already, so a failure is a short wait (not a failure): the next
// attempt finds the answer and writes it again.
func (h *Handler) writeAnswer(ctx context.Context, t *asynq.Task, data []byte) error {
	w := t.ResultWriter()
	if w == nil {
		return nil
	}
	var err error
	for try := range 3 {
		if _, err = w.Write(data); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	h.redisLog.Warn().Err(err).Msg("result not written; the answer is stored and the task will complete on its next attempt")
	return &backoff.Deferral{Delay: time.Second, Reason: "answer stored, result write pending"}
}

// answerData is a result as stored in the idempotency record.
func answerData(r tasks.Result) ([]byte, error) { return json.Marshal(r) }

// settleRetry retries settles that failed (Redis away), so a reservation is
// not left in flight until its TTL (which would hold the cold-start probe
// and headroom for minutes). Settling twice is harmless (settle.lua).
type settleRetry struct {
	h    *Handler
	mu   sync.Mutex
	list []pendingSettle
	wake chan struct{}
}

type pendingSettle struct {
	res    quota.Reservation
	info   quota.HeaderInfo
	usage  *quota.Usage
	refund bool
}

func newSettleRetry(h *Handler) *settleRetry {
	return &settleRetry{h: h, wake: make(chan struct{}, 1)}
}

func (s *settleRetry) add(p pendingSettle) {
	s.mu.Lock()
	s.list = append(s.list, p)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Len is the number of settles waiting for Redis.
func (s *settleRetry) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.list)
}

// run retries pending settles with backoff until ctx ends.
func (s *settleRetry) run(ctx context.Context) {
	var b answer.Backoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		for s.Len() > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(b.Next()):
			}
			s.mu.Lock()
			list := s.list
			s.list = nil
			s.mu.Unlock()
			var failed []pendingSettle
			for _, p := range list {
				if err := s.h.settleOnce(ctx, p); err != nil {
					failed = append(failed, p)
				}
			}
			if len(failed) == 0 {
				s.h.log.Info().Int("settles", len(list)).Msg("settles retried after Redis came back")
				b = answer.Backoff{}
				continue
			}
			s.mu.Lock()
			s.list = append(failed, s.list...)
			s.mu.Unlock()
		}
	}
}
