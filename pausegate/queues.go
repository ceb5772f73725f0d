package pausegate

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

var (
	//go:embed lua/consumers.lua
	consumersLua    string
	consumersScript = redis.NewScript(nowLua + consumersLua)

	// forgetHoldScript deletes a queue's hold only if it is still the
	// value the caller read: a gate that re-paused the queue meanwhile
	// wrote a new value, and its hold must survive a resume that raced it.
	// KEYS[1] keys.GateQueues, ARGV[1] queue, ARGV[2] the value read.
	forgetHoldScript = redis.NewScript(`if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0`)
)

// holdState is a hold value's state (holdPausing or holdPaused); the rest
// of the value makes every write unique (see forgetHoldScript).
func holdState(v string) string {
	if v == "" {
		return ""
	}
	return v[:1]
}

// ConsumerTTLMin is the least time a running gate counts as consuming its
// account's queues after its last tick (Run marks it every tick; the
// liveness is the larger of this and three CheckIntervals).
const ConsumerTTLMin = 10 * time.Second

// Queue hold states in keys.GateQueues.
const (
	holdPausing = "0" // the gate is pausing the queue (or died doing so)
	holdPaused  = "1" // the gate paused the queue
)

// reconciled is what one reconciliation of an account's queues found.
type reconciled struct {
	unpaused int      // queues the gate unpaused
	shared   []string // queues left running: another active account consumes them
	operator []string // queues an operator paused; the gate leaves them alone
	resumed  []string // queues the gate held paused that are running now (an operator resumed them)
}

// reconcile brings asynq's pause state of account's queues in line with its
// pause: hold says whether the pause wants them paused (an active pause
// longer than ShortPause). With hold, every queue the account consumes is
// paused unless another active account consumes it too; without, every
// queue the gate holds for the account is released, and unpaused unless
// another paused account's gate holds it as well. Only queues the gate
// paused (keys.GateQueues) are ever unpaused. fresh (a pause just written)
// re-pauses a held queue found running instead of reporting it as resumed
// by an operator.
func (g *Gate) reconcile(ctx context.Context, account string, hold, fresh bool) (reconciled, error) {
	var out reconciled
	if g.cfg.Queues == nil {
		return out, nil
	}
	consumed, err := g.rdb.SMembers(ctx, keys.Queues(account)).Result()
	if err != nil {
		return out, fmt.Errorf("pausegate: list queues: %w", err)
	}
	held, err := g.rdb.HGetAll(ctx, keys.GateQueues(account)).Result()
	if err != nil {
		return out, fmt.Errorf("pausegate: read held queues: %w", err)
	}
	all := slices.Clone(consumed)
	for q := range held {
		if !slices.Contains(all, q) {
			all = append(all, q)
		}
	}
	slices.Sort(all)
	var errs []error
	for _, q := range all {
		want := hold && slices.Contains(consumed, q)
		if want {
			others, err := g.activeConsumers(ctx, account, q)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if len(others) > 0 {
				want = false
				out.shared = append(out.shared, q)
			}
		}
		switch st := holdState(held[q]); {
		case want:
			errs = append(errs, g.holdQueue(ctx, account, q, st, fresh, &out))
		case st != "":
			errs = append(errs, g.releaseQueue(ctx, account, q, held[q], &out))
		}
	}
	g.mu.Lock()
	g.shared[account] = hold && len(out.shared) > 0
	g.mu.Unlock()
	return out, errors.Join(errs...)
}

// holdQueue makes sure queue q is paused for account, whose hold state of
// q is st.
func (g *Gate) holdQueue(ctx context.Context, account, q, st string, fresh bool, out *reconciled) error {
	paused, known, err := g.queuePaused(q)
	if err != nil {
		return err
	}
	switch {
	case st == holdPaused && known && !paused && !fresh:
		out.resumed = append(out.resumed, q)
		return nil
	case st == holdPaused && known && paused:
		return nil
	case st == "" && known && paused:
		// Paused already: by another gate of this account (its hold is
		// there now), by another paused account's gate (hold it too, so
		// it stays paused while either pause lasts) or by an operator
		// (theirs to resume).
		if mine, err := g.heldByAccount(ctx, account, q); err != nil || mine {
			return err
		}
		by, err := g.heldByOther(ctx, account, q)
		if err != nil {
			return err
		}
		if by == "" {
			out.operator = append(out.operator, q)
			return nil
		}
		return g.setHold(ctx, account, q, holdPaused)
	}
	// Written before pausing: a gate that dies between the two leaves a
	// mark that the next tick finishes or releases. A first hold is only
	// written if no other gate of the account wrote one meanwhile: two
	// gates starting together would otherwise both pause, and the one
	// that found the queue paused already took it for an operator's pause
	// and deleted the hold, leaving the queue paused with no hold that a
	// resume would release.
	mark := holdPausing + ":" + g.holdStamp()
	if st == "" {
		won, err := g.rdb.HSetNX(ctx, keys.GateQueues(account), q, mark).Result()
		if err != nil {
			return fmt.Errorf("pausegate: hold queue %s: %w", q, err)
		}
		if !won {
			return nil // another gate of this account holds or is pausing it
		}
	} else if err := g.rdb.HSet(ctx, keys.GateQueues(account), q, mark).Err(); err != nil {
		return fmt.Errorf("pausegate: hold queue %s: %w", q, err)
	}
	err = g.cfg.Queues.PauseQueue(q)
	switch {
	case err == nil:
		g.log.Info().Str("account", account).Str("queue", q).Msg("queue paused")
	case !isAlready(err, "is already paused"):
		return fmt.Errorf("pausegate: pause queue %s: %w", q, err)
	case st == "" && known:
		// Paused between our look and our pause: an operator, unless a gate.
		by, err := g.heldByOther(ctx, account, q)
		if err != nil {
			return err
		}
		if by == "" {
			out.operator = append(out.operator, q)
			return forgetHoldScript.Run(ctx, g.rdb, []string{keys.GateQueues(account)}, q, mark).Err()
		}
	}
	return g.setHold(ctx, account, q, holdPaused)
}

// releaseQueue ends account's hold of queue q: it unpauses q unless another
// paused account's gate holds it, then forgets the hold (in that order, so
// a gate dying in between leaves a hold the next tick releases, never a
// paused queue nobody holds).
func (g *Gate) releaseQueue(ctx context.Context, account, q, hold string, out *reconciled) error {
	by, err := g.heldByOther(ctx, account, q)
	if err != nil {
		return err
	}
	if by == "" {
		err := g.cfg.Queues.UnpauseQueue(q)
		switch {
		case err == nil:
			out.unpaused++
			g.log.Info().Str("account", account).Str("queue", q).Msg("queue unpaused")
		case !isAlready(err, "is not paused"):
			return fmt.Errorf("pausegate: unpause queue %s: %w", q, err)
		}
	}
	return forgetHoldScript.Run(ctx, g.rdb, []string{keys.GateQueues(account)}, q, hold).Err()
}

func (g *Gate) setHold(ctx context.Context, account, q, st string) error {
	if err := g.rdb.HSet(ctx, keys.GateQueues(account), q, st+":"+g.holdStamp()).Err(); err != nil {
		return fmt.Errorf("pausegate: hold queue %s: %w", q, err)
	}
	return nil
}

// queuePaused asks the QueueController whether q is paused; known is false
// when it cannot tell (no QueueStater).
func (g *Gate) queuePaused(q string) (paused, known bool, err error) {
	s, ok := g.cfg.Queues.(QueueStater)
	if !ok {
		return false, false, nil
	}
	p, err := s.QueuePaused(q)
	if errors.Is(err, ErrQueueUnknown) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("pausegate: queue %s state: %w", q, err)
	}
	return p, true, nil
}

// heldByAccount reports whether a gate of account holds q (or is pausing it).
func (g *Gate) heldByAccount(ctx context.Context, account, q string) (bool, error) {
	n, err := g.rdb.HExists(ctx, keys.GateQueues(account), q).Result()
	if err != nil {
		return false, fmt.Errorf("pausegate: read held queues: %w", err)
	}
	return n, nil
}

// heldByOther returns an account other than account whose gate holds q
// paused for an active pause, or "". Holds of accounts whose pause is over
// (their gates did not run to release them) are dropped on the way.
func (g *Gate) heldByOther(ctx context.Context, account, q string) (string, error) {
	accounts, err := Accounts(ctx, g.rdb)
	if err != nil {
		return "", fmt.Errorf("pausegate: list accounts: %w", err)
	}
	for _, a := range accounts {
		if a == account {
			continue
		}
		st, err := g.rdb.HGet(ctx, keys.GateQueues(a), q).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("pausegate: read held queues of %s: %w", a, err)
		}
		rec, _, err := g.read(ctx, a)
		if err != nil {
			return "", err
		}
		if rec.Active(g.cfg.Clock.Now()) {
			return a, nil
		}
		g.log.Info().Str("account", a).Str("queue", q).Str("hold", st).Msg("stale queue hold dropped (its pause is over)")
		if err := g.rdb.HDel(ctx, keys.GateQueues(a), q).Err(); err != nil {
			return "", err
		}
	}
	return "", nil
}

// activeConsumers lists the accounts other than account that consume q and
// are active: a gate of theirs is running and they are not paused. While
// one exists, account's pause must not pause q.
func (g *Gate) activeConsumers(ctx context.Context, account, q string) ([]string, error) {
	accounts, err := Accounts(ctx, g.rdb)
	if err != nil {
		return nil, fmt.Errorf("pausegate: list accounts: %w", err)
	}
	var out []string
	for _, a := range accounts {
		if a == account {
			continue
		}
		ok, err := g.rdb.SIsMember(ctx, keys.Queues(a), q).Result()
		if err != nil {
			return nil, fmt.Errorf("pausegate: queues of %s: %w", a, err)
		}
		if !ok {
			continue
		}
		n, err := g.consumers(ctx, a, "", 0)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue
		}
		rec, _, err := g.read(ctx, a)
		if err != nil {
			return nil, err
		}
		if !rec.Active(g.cfg.Clock.Now()) {
			out = append(out, a)
		}
	}
	return out, nil
}

// consumers marks member (unless "") alive for ttl (removes it when ttl
// <= 0) among account's running gates and returns how many are alive.
func (g *Gate) consumers(ctx context.Context, account, member string, ttl time.Duration) (int64, error) {
	n, err := consumersScript.Run(ctx, g.rdb, []string{keys.Consumers(account)},
		member, ttl.Milliseconds(), clock.ScriptNow(g.cfg.Clock)).Int64()
	if err != nil {
		return 0, fmt.Errorf("pausegate: consumers of %s: %w", account, err)
	}
	return n, nil
}

func (g *Gate) consumerTTL() time.Duration {
	return max(ConsumerTTLMin, 3*g.cfg.CheckInterval)
}

// Shared reports whether account's pause is enforced by its record alone
// because another active account consumes its queues (so they keep
// running), as of this gate's last reconciliation. A worker then gives
// tasks back quickly instead of parking them until the pause ends: another
// account can take them.
func (g *Gate) Shared(account string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shared[account]
}

// ErrQueueUnknown is returned by a QueueStater for a queue whose state it
// cannot read (asynq: no task was ever enqueued to it).
var ErrQueueUnknown = errors.New("pausegate: queue unknown to asynq")

// AsynqQueues adapts asynq's inspector to the gate: it pauses, unpauses,
// tells whether a queue is paused and runs retry tasks.
func AsynqQueues(insp *asynq.Inspector) QueueController { return asynqQueues{insp} }

type asynqQueues struct{ *asynq.Inspector }

var (
	_ QueueStater = asynqQueues{}
	_ RetryRunner = asynqQueues{}
)

func (a asynqQueues) QueuePaused(q string) (bool, error) {
	info, err := a.GetQueueInfo(q)
	if err != nil && isAlready(err, "does not exist") {
		// asynq lists a queue once a task was enqueued to it; before, its
		// paused flag cannot be read (asynq v0.26.0 returns an internal
		// QueueNotFoundError).
		return false, ErrQueueUnknown
	}
	if err != nil {
		return false, err
	}
	return info.Paused, nil
}

// holdStamp makes a hold value unique to its write: this gate's id and a
// counter.
func (g *Gate) holdStamp() string {
	return g.id + ":" + strconv.FormatUint(g.holdSeq.Add(1), 10)
}
