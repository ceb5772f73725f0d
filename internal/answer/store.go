package answer

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/keys"
)

var (
	//go:embed lua/claim.lua
	claimLua    string
	claimScript = redis.NewScript(claimLua)

	//go:embed lua/takeover.lua
	takeoverLua    string
	takeoverScript = redis.NewScript(takeoverLua)

	//go:embed lua/release.lua
	releaseLua    string
	releaseScript = redis.NewScript(releaseLua)
)

// Config configures a Store.
type Config struct {
	Account string // account whose keys hold the records (required)
	// ClaimTTL is how long a claim blocks other attempts of the same task:
	// the longest a claimed call can still finish (the request timeout)
	// plus slack (default 11m: the 10m default request timeout + 1m).
	ClaimTTL time.Duration
	// Retention is how long a stored answer is kept (default 24h, as
	// results; set it to the enqueue side's --retention).
	Retention time.Duration
}

const (
	// ClaimTTLDefault is Config.ClaimTTL's default.
	ClaimTTLDefault = 11 * time.Minute
	// RetentionDefault is Config.Retention's default.
	RetentionDefault = 24 * time.Hour
	// AliveTTL is how long a worker process counts as alive after its last
	// heartbeat (Heartbeat refreshes it every AliveTTL/5).
	AliveTTL = 15 * time.Second
	// TakeoverGrace is how long a claim owner must have been seen dead
	// before its claim is taken over.
	TakeoverGrace = 10 * time.Second
	// ClaimSlack is added to the request timeout to make a claim's TTL: the
	// time from the call's end to its answer reaching Redis.
	ClaimSlack = time.Minute
)

// WithDefaults fills zero fields with their defaults.
func (c Config) WithDefaults() Config {
	c.ClaimTTL = cmp.Or(c.ClaimTTL, ClaimTTLDefault)
	c.Retention = cmp.Or(c.Retention, RetentionDefault)
	return c
}

// Validate rejects values out of range.
func (c Config) Validate() error {
	switch {
	case keys.ValidateAccount(c.Account) != nil:
		return fmt.Errorf("answer: Account: %w", keys.ValidateAccount(c.Account))
	case c.ClaimTTL < time.Second || c.ClaimTTL > 48*time.Hour:
		return fmt.Errorf("answer: ClaimTTL must be between 1s and 48h, got %v", c.ClaimTTL)
	case c.Retention < time.Minute || c.Retention > 365*24*time.Hour:
		return fmt.Errorf("answer: Retention must be between 1m and 8760h, got %v", c.Retention)
	}
	return nil
}

// State is what a Claim found.
type State int

// The outcomes of Store.Claim.
const (
	Mine    State = iota // claimed for the caller: call the provider
	Done                 // the answer is stored: do not call
	Claimed              // another attempt's call may still finish: wait
)

// Claim is the outcome of Store.Claim.
type Claim struct {
	State     State
	Answer    []byte        // Done: the stored answer
	Owner     string        // Claimed: the other attempt
	Remaining time.Duration // Claimed: until the other claim expires
}

// Store reads and writes idempotency records.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
}

// NewStore returns a store for cfg.Account.
func NewStore(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store{rdb: rdb, cfg: cfg}, nil
}

// Claim looks up taskID's record and claims the task for owner when there
// is neither an answer nor a live claim of another attempt.
func (s *Store) Claim(ctx context.Context, taskID, owner string) (Claim, error) {
	res, err := claimScript.Run(ctx, s.rdb, []string{keys.Answer(s.cfg.Account, taskID)}, owner, s.cfg.ClaimTTL.Milliseconds()).Slice()
	if err != nil {
		return Claim{}, fmt.Errorf("answer claim: %w", err)
	}
	if len(res) == 0 {
		return Claim{}, errors.New("answer claim: empty reply")
	}
	switch res[0] {
	case "ok":
		return Claim{State: Mine}, nil
	case "done":
		if len(res) < 2 {
			return Claim{}, errors.New("answer claim: done without an answer")
		}
		v, _ := res[1].(string)
		return Claim{State: Done, Answer: []byte(v)}, nil
	case "claimed":
		if len(res) < 3 {
			return Claim{}, errors.New("answer claim: claimed without owner and TTL")
		}
		owner, _ := res[1].(string)
		ms, _ := res[2].(int64)
		return Claim{State: Claimed, Owner: owner, Remaining: time.Duration(max(ms, 0)) * time.Millisecond}, nil
	}
	return Claim{}, fmt.Errorf("answer claim: unexpected reply %v", res[0])
}

// Release gives up owner's claim on taskID (its call failed), so the next
// attempt may call at once. A stored answer is never removed.
func (s *Store) Release(ctx context.Context, taskID, owner string) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{keys.Answer(s.cfg.Account, taskID)}, owner).Err(); err != nil {
		return fmt.Errorf("answer release: %w", err)
	}
	return nil
}

// Put stores taskID's answer for Retention, replacing any claim.
func (s *Store) Put(ctx context.Context, taskID string, answer []byte) error {
	if len(answer) == 0 || answer[0] != '{' {
		return errors.New("answer put: an answer must be a JSON object")
	}
	if err := s.rdb.Set(ctx, keys.Answer(s.cfg.Account, taskID), answer, s.cfg.Retention).Err(); err != nil {
		return fmt.Errorf("answer put: %w", err)
	}
	return nil
}

// Account is the account whose records s holds.
func (s *Store) Account() string { return s.cfg.Account }

// Takeover outcomes.
const (
	TakenOver    = 1  // the claim is the caller's: call the provider
	ClaimChanged = 0  // the record changed meanwhile: Claim again
	OwnerAlive   = -1 // the owner's worker runs: wait for its answer
	OwnerSuspect = -2 // the owner looks dead; ask again after TakeoverGrace
)

// Takeover takes owner's claim on taskID for newOwner when owner's worker
// process has been seen dead for TakeoverGrace (see takeover.lua).
func (s *Store) Takeover(ctx context.Context, taskID, owner, newOwner string) (int, error) {
	proc := Proc(owner)
	n, err := takeoverScript.Run(ctx, s.rdb, []string{keys.Answer(s.cfg.Account, taskID), keys.Alive(s.cfg.Account, proc), keys.Suspect(s.cfg.Account, proc)},
		"claim:"+owner, newOwner, s.cfg.ClaimTTL.Milliseconds(), TakeoverGrace.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("answer takeover: %w", err)
	}
	return n, nil
}

// Owner is the claim owner of attempt n of process proc.
func Owner(proc string, n uint64) string { return proc + "/" + strconv.FormatUint(n, 10) }

// Proc is the worker process of a claim owner.
func Proc(owner string) string {
	if i := strings.LastIndexByte(owner, '/'); i >= 0 {
		return owner[:i]
	}
	return owner
}

// Heartbeat marks worker process proc alive until ctx ends: every
// AliveTTL/5, and every second while Redis does not answer, so a worker
// cut off from Redis is seen alive again within a second or so of Redis
// coming back. It removes the mark when ctx ends.
func (s *Store) Heartbeat(ctx context.Context, proc string) {
	key := keys.Alive(s.cfg.Account, proc)
	for {
		wait := AliveTTL / 5
		if err := s.rdb.Set(ctx, key, "1", AliveTTL).Err(); err != nil {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = s.rdb.Del(dctx, key).Err()
			cancel()
			return
		case <-time.After(wait):
		}
	}
}
