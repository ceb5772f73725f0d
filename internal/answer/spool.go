package answer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Entry is one answer not yet known to be in Redis.
type Entry struct {
	Account string          `json:"account"`
	TaskID  string          `json:"task_id"`
	Answer  json.RawMessage `json:"answer"` // the result's JSON, as stored by Store.Put
	At      time.Time       `json:"spooled_at"`
}

// Spool holds answers until Redis has them: in memory, and as one file per
// answer in a directory, so they survive a Redis outage of any length and a
// worker restart (files are renamed into place, not fsynced: a killed
// process loses nothing, a host crash may lose the last seconds).
type Spool struct {
	dir   string
	store *Store
	log   zerolog.Logger // sampled: a flush fails once per try while Redis is away
	info  zerolog.Logger
	wake  chan struct{}

	mu      sync.Mutex
	entries map[string]Entry
}

// OpenSpool opens (creating it if needed) the spool directory dir, loads the
// answers left there by an earlier process, and returns the spool. Every
// file in dir belongs to store's account.
func OpenSpool(dir string, store *Store, log zerolog.Logger) (*Spool, error) {
	if dir == "" {
		return nil, errors.New("answer spool: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("answer spool: %w", err)
	}
	log = log.With().Str("component", "spool").Logger()
	s := &Spool{dir: dir, store: store, info: log, wake: make(chan struct{}, 1), entries: map[string]Entry{},
		log: log.Sample(&zerolog.BurstSampler{Burst: 3, Period: 10 * time.Second})}
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("answer spool: %w", err)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("answer spool: %w", err)
		}
		var e Entry
		if err := json.Unmarshal(data, &e); err != nil || e.TaskID == "" || e.Account != store.Account() {
			// A torn or foreign file: keep it aside for a human, do not delete
			// what might be a paid answer.
			log.Error().Str("file", name).Msg("unreadable spool file left in place (renamed to .bad)")
			_ = os.Rename(name, name+".bad")
			continue
		}
		s.entries[e.TaskID] = e
	}
	if len(s.entries) > 0 {
		log.Info().Int("answers", len(s.entries)).Str("dir", dir).Msg("spooled answers from an earlier run")
	}
	return s, nil
}

func (s *Spool) path(taskID string) string {
	sum := sha256.Sum256([]byte(taskID))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:16])+".json")
}

// Add keeps e in memory and writes it to the spool directory. The answer
// is kept in memory even when the file cannot be written (that error is
// returned for the caller to log).
func (s *Spool) Add(e Entry) error {
	s.mu.Lock()
	s.entries[e.TaskID] = e
	s.mu.Unlock()
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	final := s.path(e.TaskID)
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("answer spool: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("answer spool: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("answer spool: %w", err)
	}
	return nil
}

// Get returns the spooled answer of taskID, if any.
func (s *Spool) Get(taskID string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[taskID]
	return e, ok
}

// Len is the number of answers not yet in Redis.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Done forgets taskID's answer (Redis has it).
func (s *Spool) Done(taskID string) {
	s.mu.Lock()
	delete(s.entries, taskID)
	s.mu.Unlock()
	if err := os.Remove(s.path(taskID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.info.Warn().Err(err).Msg("remove spool file")
	}
}

// Store writes taskID's spooled answer to Redis and forgets it.
func (s *Spool) Store(ctx context.Context, taskID string) error {
	e, ok := s.Get(taskID)
	if !ok {
		return nil
	}
	if err := s.store.Put(ctx, taskID, e.Answer); err != nil {
		return err
	}
	s.Done(taskID)
	return nil
}

// Kick asks the background flusher (Run) to try again now.
func (s *Spool) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Flush tries once to store every spooled answer; it returns the first
// error and how many answers are left.
func (s *Spool) Flush(ctx context.Context) (int, error) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.entries))
	for id := range s.entries {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	var first error
	for _, id := range ids {
		if err := s.Store(ctx, id); err != nil && first == nil {
			first = err
		}
	}
	return s.Len(), first
}

// FlushAll stores every spooled answer, retrying with backoff for as long
// as Redis is away, until the spool is empty or ctx ends. A worker calls it
// before taking tasks.
func (s *Spool) FlushAll(ctx context.Context) error {
	var b Backoff
	for {
		left, err := s.Flush(ctx)
		if left == 0 {
			return nil
		}
		s.log.Warn().Err(err).Int("answers", left).Msg("spooled answers not yet stored; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(b.Next()):
		}
	}
}

// Run stores spooled answers in the background until ctx ends: at once
// when kicked, then with backoff while Redis is away.
func (s *Spool) Run(ctx context.Context) {
	var b Backoff
	for {
		wait := time.Hour
		if s.Len() > 0 {
			before := s.Len()
			left, err := s.Flush(ctx)
			switch {
			case left == 0:
				s.info.Info().Int("answers", before).Msg("spooled answers stored")
				b = Backoff{}
			default:
				s.log.Warn().Err(err).Int("answers", left).Msg("spooled answers not yet stored; retrying")
				wait = b.Next()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-time.After(wait):
		}
	}
}

// Backoff is the retry schedule of answer writes: 100ms doubling to 2s, with
// jitter. The zero value is ready to use.
type Backoff struct{ n int }

// Next returns the next wait.
func (b *Backoff) Next() time.Duration {
	d := 100 * time.Millisecond << min(b.n, 5)
	b.n++
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// SpoolDir is the spool directory of account under base.
func SpoolDir(base, account string) string {
	return filepath.Join(base, strings.ReplaceAll(account, string(filepath.Separator), "_"))
}
