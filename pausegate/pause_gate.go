package pausegate

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

var (
	//go:embed lua/pause.lua
	pauseLua    string
	pauseScript = redis.NewScript(pauseLua)

	//go:embed lua/clear.lua
	clearLua    string
	clearScript = redis.NewScript(clearLua)

	//go:embed lua/done.lua
	doneLua    string
	doneScript = redis.NewScript(doneLua)
)

// Gate is the cluster-wide pause switch of promptq accounts. One Gate per
// worker process; all gates share state through Redis.
type Gate struct {
	rdb redis.UniversalClient
	cfg Config
	log zerolog.Logger

	mu      sync.Mutex
	local   map[string]Record // last known record per account (from Run, Tick, Check, Pause)
	shared  map[string]bool   // account's pause is record-only: other active accounts share its queues
	changed chan struct{}     // closed and replaced whenever local changes

	readyOnce sync.Once
	ready     chan struct{}

	id      string        // this gate, in its queue holds' values
	holdSeq atomic.Uint64 // makes every hold value unique (forgetHoldScript)
}

// PauseRequest asks for a pause.
type PauseRequest struct {
	// Until is when work may resume. Zero means indefinite for KindManual and
	// now + Config.DefaultPause for every other kind.
	Until  time.Time
	Reason string
	Kind   Kind // required, e.g. KindQuota or KindManual
}

// New returns a Gate using rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Gate, error) {
	if rdb == nil {
		return nil, errors.New("pausegate: nil Redis client")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Gate{
		id:      randHex(),
		rdb:     rdb,
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "pausegate").Logger(),
		local:   make(map[string]Record),
		shared:  make(map[string]bool),
		changed: make(chan struct{}),
		ready:   make(chan struct{}),
	}, nil
}

// Register records that this worker consumes queues for account, so that
// pauses of the account pause those asynq queues, and lists the account for
// ResumeAll.
func (g *Gate) Register(ctx context.Context, account string, queues []string) error {
	if err := keys.ValidateAccount(account); err != nil {
		return err
	}
	if len(queues) > 0 {
		if err := g.rdb.SAdd(ctx, keys.Queues(account), toAny(queues)...).Err(); err != nil {
			return fmt.Errorf("pausegate: register queues: %w", err)
		}
	}
	if err := g.rdb.SAdd(ctx, keys.Accounts(), account).Err(); err != nil {
		return fmt.Errorf("pausegate: register account: %w", err)
	}
	return nil
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

// Local reports account's pause from the in-memory view kept by Run, Tick,
// Check and Pause, without a Redis round trip. An account never seen is
// reported as not paused.
func (g *Gate) Local(account string) (Record, bool) {
	g.mu.Lock()
	rec := g.local[account]
	g.mu.Unlock()
	return rec, rec.Active(g.cfg.Clock.Now())
}

// Notify returns a channel that is closed at the next change of the local
// view (any account). Take it before reading Local, then select on it next to
// your timer; take a new one after it fires. Nothing needs releasing.
func (g *Gate) Notify() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

// Ready returns a channel closed once Run has subscribed to the event
// channels and made its first Tick.
func (g *Gate) Ready() <-chan struct{} { return g.ready }

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

// Accounts lists every account that has registered a worker (Register).
func Accounts(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	return rdb.SMembers(ctx, keys.Accounts()).Result()
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

// Status describes an account's pause for admin tools.
type Status struct {
	Record    Record
	Active    bool
	Remaining time.Duration // 0 when inactive, Indefinite when without end
	Queues    []string      // queues registered for the account
	// PausedQueues lists the paused queues among Queues; nil unless
	// Config.Queues implements QueueStater.
	PausedQueues []string
	// HeldQueues lists the queues the gate paused for the account (it
	// unpauses only these).
	HeldQueues []string
	// SharedQueues lists, during a long pause, the account's queues left
	// running because another active account consumes them: there the
	// record alone gates the account's workers.
	SharedQueues []string
}

// Status reports account's pause as stored in Redis.
func (g *Gate) Status(ctx context.Context, account string) (Status, error) {
	rec, active, err := g.Check(ctx, account)
	if err != nil {
		return Status{}, err
	}
	qs, err := g.rdb.SMembers(ctx, keys.Queues(account)).Result()
	if err != nil {
		return Status{}, fmt.Errorf("pausegate: list queues: %w", err)
	}
	slices.Sort(qs)
	now := g.cfg.Clock.Now()
	st := Status{Record: rec, Active: active, Remaining: rec.Remaining(now), Queues: qs}
	held, err := g.rdb.HKeys(ctx, keys.GateQueues(account)).Result()
	if err != nil {
		return st, fmt.Errorf("pausegate: read held queues: %w", err)
	}
	slices.Sort(held)
	st.HeldQueues = held
	if st.Remaining > g.cfg.ShortPause {
		for _, q := range qs {
			others, err := g.activeConsumers(ctx, account, q)
			if err != nil {
				return st, err
			}
			if len(others) > 0 {
				st.SharedQueues = append(st.SharedQueues, q)
			}
		}
	}
	if s, ok := g.cfg.Queues.(QueueStater); ok {
		st.PausedQueues = []string{}
		for _, q := range qs {
			p, err := s.QueuePaused(q)
			if errors.Is(err, ErrQueueUnknown) {
				continue
			}
			if err != nil {
				return st, fmt.Errorf("pausegate: queue %s state: %w", q, err)
			}
			if p {
				st.PausedQueues = append(st.PausedQueues, q)
			}
		}
	}
	return st, nil
}

// read returns account's record (zero when none) and its raw until field.
func (g *Gate) read(ctx context.Context, account string) (Record, string, error) {
	f, err := g.rdb.HGetAll(ctx, keys.Pause(account)).Result()
	if err != nil {
		return Record{}, "", fmt.Errorf("pausegate: read %s: %w", account, err)
	}
	rec, raw, ok := recordFromFields(account, f)
	if !ok && len(f) > 0 {
		g.log.Warn().Str("account", account).Str("until", raw).Msg("unreadable pause record ignored")
	}
	return rec, raw, nil
}

// setLocal stores rec as account's local view and wakes Notify waiters if
// it changed.
func (g *Gate) setLocal(account string, rec Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, seen := g.local[account]
	if seen && old.present == rec.present && old.Until.Equal(rec.Until) && old.Kind == rec.Kind && old.Reason == rec.Reason {
		return
	}
	if !seen && !rec.present {
		g.local[account] = rec
		return
	}
	g.local[account] = rec
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *Gate) publish(ctx context.Context, account string, ev Event) {
	b, _ := json.Marshal(ev)
	if err := g.rdb.Publish(ctx, keys.Events(account), b).Err(); err != nil {
		// Not fatal: every gate's Tick picks the change up within CheckInterval.
		g.log.Warn().Err(err).Str("account", account).Msg("publish pause event failed")
	}
}

// isAlready reports whether err is asynq's "already paused"/"not paused"
// error. asynq v0.26.0 returns plain fmt.Errorf values for these
// (internal/rdb Pause/Unpause: `queue "q" is already paused`, `queue "q" is
// not paused`), so the text is all there is to match.
func isAlready(err error, phrase string) bool {
	return strings.Contains(err.Error(), phrase)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func randHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
