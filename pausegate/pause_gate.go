package pausegate

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/keys"
)

// nowLua is the scripts' clock (lua/now.lua), prepended to every script
// that takes a now argument.
//
//go:embed lua/now.lua
var nowLua string

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

// Accounts lists every account that has registered a worker (Register).
func Accounts(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	return rdb.SMembers(ctx, keys.Accounts()).Result()
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
