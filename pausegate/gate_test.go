package pausegate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

// fakeQueues is a QueueController that behaves like asynq's inspector
// (errors for "already paused"/"not paused") and records every call.
type fakeQueues struct {
	mu       sync.Mutex
	paused   map[string]bool
	pauses   []string // queues passed to successful PauseQueue calls
	unpauses []string // queues passed to successful UnpauseQueue calls
}

func newFakeQueues() *fakeQueues { return &fakeQueues{paused: map[string]bool{}} }

func (f *fakeQueues) PauseQueue(q string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.paused[q] {
		return fmt.Errorf("queue %q is already paused", q)
	}
	f.paused[q] = true
	f.pauses = append(f.pauses, q)
	return nil
}

func (f *fakeQueues) UnpauseQueue(q string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.paused[q] {
		return fmt.Errorf("queue %q is not paused", q)
	}
	delete(f.paused, q)
	f.unpauses = append(f.unpauses, q)
	return nil
}

func (f *fakeQueues) QueuePaused(q string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused[q], nil
}

func (f *fakeQueues) counts() (pauses, unpauses int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pauses), len(f.unpauses)
}

func (f *fakeQueues) isPaused(q string) bool {
	p, _ := f.QueuePaused(q)
	return p
}

type env struct {
	r     *testutil.Redis
	clk   *clock.Fake
	qs    *fakeQueues
	acct  string
	queue string
}

// setup returns a fresh account with one registered queue and a fake clock
// at the current wall time (so Redis TTLs are sensible on a real server).
func setup(t *testing.T) *env {
	t.Helper()
	e := &env{
		r:    testutil.NewRedis(t),
		clk:  clock.NewFake(time.Now().Truncate(time.Millisecond)),
		qs:   newFakeQueues(),
		acct: testutil.Name(t),
	}
	e.queue = "q-" + e.acct
	ctx := context.Background()
	t.Cleanup(func() {
		e.r.Client.Del(ctx, keys.Pause(e.acct), keys.Queues(e.acct), keys.GateQueues(e.acct), keys.Consumers(e.acct))
		e.r.Client.SRem(ctx, keys.Accounts(), e.acct)
	})
	g := e.gate(t, "setup")
	if err := g.Register(ctx, e.acct, []string{e.queue}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) gate(t *testing.T, name string, mods ...func(*Config)) *Gate {
	t.Helper()
	cfg := Config{Clock: e.clk, Queues: e.qs, SetBy: name}
	for _, m := range mods {
		m(&cfg)
	}
	g, err := New(e.r.Client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustPause(t *testing.T, g *Gate, acct string, req PauseRequest) Record {
	t.Helper()
	rec, err := g.Pause(context.Background(), acct, req)
	if err != nil {
		t.Fatalf("Pause(%+v): %v", req, err)
	}
	return rec
}

func TestRecordActiveRemaining(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	tests := []struct {
		name      string
		rec       Record
		active    bool
		remaining time.Duration
	}{
		{"zero record", Record{}, false, 0},
		{"future", Record{present: true, Until: now.Add(time.Minute)}, true, time.Minute},
		{"exactly now", Record{present: true, Until: now}, false, 0},
		{"past", Record{present: true, Until: now.Add(-time.Second)}, false, 0},
		{"indefinite", Record{present: true}, true, Indefinite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.Active(now); got != tt.active {
				t.Errorf("Active = %v, want %v", got, tt.active)
			}
			if got := tt.rec.Remaining(now); got != tt.remaining {
				t.Errorf("Remaining = %v, want %v", got, tt.remaining)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"default pause too short", func(c *Config) { c.DefaultPause = 500 * time.Millisecond }, false},
		{"default pause too long", func(c *Config) { c.DefaultPause = 169 * time.Hour }, false},
		{"default pause max", func(c *Config) { c.DefaultPause = 168 * time.Hour }, true},
		{"check interval too short", func(c *Config) { c.CheckInterval = time.Millisecond }, false},
		{"negative short pause", func(c *Config) { c.ShortPause = -time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{}
			tt.mod(&c)
			err := c.WithDefaults().Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestPauseExtendOnly(t *testing.T) {
	type step struct {
		in   time.Duration // from now; 0 = zero Until
		kind Kind
	}
	tests := []struct {
		name      string
		steps     []step
		wantUntil time.Duration // from now; -1 = indefinite
		wantKind  Kind
	}{
		{"shorter does not shorten", []step{{time.Hour, KindQuota}, {time.Minute, KindRateLimit}}, time.Hour, KindQuota},
		{"longer extends and takes over", []step{{time.Minute, KindRateLimit}, {time.Hour, KindQuota}}, time.Hour, KindQuota},
		{"tie keeps existing", []step{{time.Minute, KindRateLimit}, {time.Minute, KindQuota}}, time.Minute, KindRateLimit},
		{"indefinite beats finite", []step{{time.Hour, KindQuota}, {0, KindManual}}, -1, KindManual},
		{"finite automatic after manual indefinite stays indefinite", []step{{0, KindManual}, {200 * time.Hour, KindQuota}}, -1, KindManual},
		{"automatic default pause after manual indefinite stays indefinite", []step{{0, KindManual}, {0, KindAuth}}, -1, KindManual},
		{"automatic never shortens manual", []step{{2 * time.Hour, KindManual}, {time.Hour, KindQuota}}, 2 * time.Hour, KindManual},
		{"automatic without until uses DefaultPause", []step{{0, KindAuth}}, time.Hour, KindAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			g := e.gate(t, "g")
			now := e.clk.Now()
			for _, s := range tt.steps {
				req := PauseRequest{Kind: s.kind, Reason: "r-" + string(s.kind)}
				if s.in != 0 {
					req.Until = now.Add(s.in)
				}
				mustPause(t, g, e.acct, req)
			}
			rec, active, err := g.Check(context.Background(), e.acct)
			if err != nil || !active {
				t.Fatalf("Check = %+v, %v, %v; want active", rec, active, err)
			}
			if tt.wantUntil < 0 {
				if !rec.Until.IsZero() {
					t.Fatalf("until = %v, want indefinite", rec.Until)
				}
			} else if !rec.Until.Equal(now.Add(tt.wantUntil)) {
				t.Fatalf("until = %v, want now+%v", rec.Until, tt.wantUntil)
			}
			if rec.Kind != tt.wantKind || rec.Reason != "r-"+string(tt.wantKind) || rec.SetBy != "g" {
				t.Fatalf("record = %+v, want kind %s", rec, tt.wantKind)
			}
		})
	}
}

func TestPauseRecordFormatAndTTL(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "host:42")
	ctx := context.Background()
	now := e.clk.Now()
	mustPause(t, g, e.acct, PauseRequest{Until: now.Add(10 * time.Minute), Reason: "429", Kind: KindRateLimit})

	f, err := e.r.Client.HGetAll(ctx, keys.Pause(e.acct)).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"until": fmt.Sprint(now.Add(10 * time.Minute).UnixMilli()), "reason": "429", "kind": string(KindRateLimit),
		"set_by": "host:42", "set_at": fmt.Sprint(now.UnixMilli()),
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("field %s = %q, want %q", k, f[k], v)
		}
	}
	ttl := e.r.Client.PTTL(ctx, keys.Pause(e.acct)).Val()
	if wantTTL := 10*time.Minute + RecordGrace; ttl > wantTTL || ttl < wantTTL-time.Minute {
		t.Errorf("PTTL = %v, want about %v", ttl, wantTTL)
	}

	mustPause(t, g, e.acct, PauseRequest{Reason: "ops", Kind: KindManual})
	if ttl := e.r.Client.PTTL(ctx, keys.Pause(e.acct)).Val(); ttl >= 0 {
		t.Errorf("indefinite record PTTL = %v, want none", ttl)
	}
	if got := e.r.Client.HGet(ctx, keys.Pause(e.acct), "until").Val(); got != "0" {
		t.Errorf("indefinite until = %q, want \"0\"", got)
	}
}

func TestPauseValidation(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	ctx := context.Background()
	if _, err := g.Pause(ctx, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour)}); err == nil {
		t.Error("Pause without Kind succeeded")
	}
	if _, err := g.Pause(ctx, "bad{acct}", PauseRequest{Kind: KindQuota}); err == nil {
		t.Error("Pause with invalid account succeeded")
	}
	rec := mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(-time.Second), Kind: KindQuota})
	if rec.Active(e.clk.Now()) || e.r.Client.Exists(ctx, keys.Pause(e.acct)).Val() != 0 {
		t.Errorf("a pause ending in the past wrote a record: %+v", rec)
	}
}

func TestAllow(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	ctx := context.Background()
	if err := g.Allow(ctx, e.acct); err != nil {
		t.Fatalf("Allow before pause = %v", err)
	}
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Minute), Kind: KindQuota})
	err := g.Allow(ctx, e.acct)
	var pe *PausedError
	if !errors.Is(err, ErrPaused) || !errors.As(err, &pe) || pe.RetryAfter != time.Minute {
		t.Fatalf("Allow = %v, want PausedError with RetryAfter 1m", err)
	}
}

func TestShortAndLongPauses(t *testing.T) {
	tests := []struct {
		name   string
		length time.Duration
		paused bool
	}{
		{"short pause is record only", 2 * time.Second, false},
		{"pause equal to ShortPause is record only", ShortPauseDefault, false},
		{"long pause pauses queues", 4 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			g := e.gate(t, "g")
			rec := mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(tt.length), Kind: KindRateLimit})
			if !rec.Active(e.clk.Now()) {
				t.Fatalf("record not active: %+v", rec)
			}
			if got := e.qs.isPaused(e.queue); got != tt.paused {
				t.Fatalf("queue paused = %v, want %v", got, tt.paused)
			}
			// A second identical pause tolerates "already paused".
			if _, err := g.Pause(context.Background(), e.acct, PauseRequest{Until: e.clk.Now().Add(tt.length), Kind: KindRateLimit}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTickResumesOnceAfterExpiry(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	ctx := context.Background()
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Minute), Kind: KindQuota})
	if !e.qs.isPaused(e.queue) {
		t.Fatal("queue not paused by a long pause")
	}

	if err := g.Tick(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if _, u := e.qs.counts(); u != 0 || !e.qs.isPaused(e.queue) {
		t.Fatal("Tick resumed an active pause")
	}

	e.clk.Advance(time.Minute)
	for range 3 {
		if err := g.Tick(ctx, e.acct); err != nil {
			t.Fatal(err)
		}
	}
	if _, u := e.qs.counts(); u != 1 || e.qs.isPaused(e.queue) {
		t.Fatalf("unpause calls = %d, want exactly 1", u)
	}
	if e.r.Client.Exists(ctx, keys.Pause(e.acct)).Val() != 0 {
		t.Fatal("expired record not cleared")
	}
	if _, active := g.Local(e.acct); active {
		t.Fatal("Local still paused")
	}
}

func TestTickRacingGatesUnpauseOnce(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	gates := make([]*Gate, 8)
	for i := range gates {
		gates[i] = e.gate(t, fmt.Sprintf("g%d", i))
	}
	mustPause(t, gates[0], e.acct, PauseRequest{Until: e.clk.Now().Add(time.Minute), Kind: KindQuota})
	e.clk.Advance(2 * time.Minute)

	// Every gate reads the same expired record, then all race to clear it.
	raw := e.r.Client.HGet(ctx, keys.Pause(e.acct), "until").Val()
	var wg sync.WaitGroup
	wins := make([]bool, len(gates))
	for i, g := range gates {
		wg.Go(func() {
			won, err := g.autoResume(ctx, e.acct, raw, e.clk.Now())
			if err != nil {
				t.Error(err)
			}
			wins[i] = won
		})
	}
	wg.Wait()
	if n := countTrue(wins); n != 1 {
		t.Fatalf("%d gates won the clear, want 1", n)
	}
	// And through Tick itself, on a second expired pause.
	mustPause(t, gates[0], e.acct, PauseRequest{Until: e.clk.Now().Add(time.Minute), Kind: KindQuota})
	e.clk.Advance(2 * time.Minute)
	for _, g := range gates {
		wg.Go(func() {
			if err := g.Tick(ctx, e.acct); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p, u := e.qs.counts(); p != 2 || u != 2 {
		t.Fatalf("pause/unpause calls = %d/%d, want 2/2", p, u)
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func TestCompareAndClearKeepsNewerPause(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	ctx := context.Background()
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Minute), Kind: KindRateLimit})
	e.clk.Advance(time.Minute)

	// The gate reads the expired record...
	_, raw, err := g.read(ctx, e.acct)
	if err != nil {
		t.Fatal(err)
	}
	// ...another worker writes a new pause...
	other := e.gate(t, "other")
	newer := mustPause(t, other, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota})
	// ...and the clear with the stale until must not undo it, even from a
	// gate whose clock runs so far ahead that the newer pause looks expired
	// too (so only the compare on until protects it).
	won, err := g.autoResume(ctx, e.acct, raw, newer.Until.Add(time.Second))
	if err != nil || won {
		t.Fatalf("autoResume = %v, %v; want lost", won, err)
	}
	rec, active, _ := g.Check(ctx, e.acct)
	if !active || !rec.Until.Equal(newer.Until) || rec.SetBy != "other" {
		t.Fatalf("newer pause lost: %+v", rec)
	}
	if !e.qs.isPaused(e.queue) {
		t.Fatal("queues unpaused under a newer pause")
	}
}

func TestAbandonedResumeIsFinishedAfterLease(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	ctx := context.Background()
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Minute), Kind: KindQuota})
	e.clk.Advance(time.Minute)

	// A gate claims the expired record and dies before unpausing.
	raw := e.r.Client.HGet(ctx, keys.Pause(e.acct), "until").Val()
	n, err := clearScript.Run(ctx, e.r.Client, []string{keys.Pause(e.acct)},
		raw, e.clk.Now().UnixMilli(), "dead", ClaimLease.Milliseconds()).Int()
	if err != nil || n != 1 {
		t.Fatalf("claim = %d, %v", n, err)
	}

	if err := g.Tick(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if !e.qs.isPaused(e.queue) {
		t.Fatal("Tick took a claim still under lease")
	}
	e.clk.Advance(ClaimLease)
	if err := g.Tick(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if _, u := e.qs.counts(); u != 1 || e.r.Client.Exists(ctx, keys.Pause(e.acct)).Val() != 0 {
		t.Fatalf("abandoned resume not finished: unpauses=%d", u)
	}
}

func TestTickRepausesQueuesOfActiveLongPause(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	// A worker wrote the record but died before pausing the queues.
	recordOnly := e.gate(t, "dead", func(c *Config) { c.Queues = nil })
	mustPause(t, recordOnly, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota})
	if e.qs.isPaused(e.queue) {
		t.Fatal("record-only gate paused queues")
	}
	g := e.gate(t, "g")
	if err := g.Tick(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if !e.qs.isPaused(e.queue) {
		t.Fatal("Tick did not pause the queues of an active long pause")
	}
}

func TestManualVersusAutomatic(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	ctx := context.Background()

	mustPause(t, g, e.acct, PauseRequest{Reason: "maintenance", Kind: KindManual})
	e.clk.Advance(365 * 24 * time.Hour)
	if err := g.Tick(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if _, active, _ := g.Check(ctx, e.acct); !active {
		t.Fatal("an indefinite manual pause expired on its own")
	}
	if _, u := e.qs.counts(); u != 0 {
		t.Fatal("Tick unpaused queues of an indefinite pause")
	}

	was, err := g.Resume(ctx, e.acct)
	if err != nil || !was {
		t.Fatalf("Resume = %v, %v; want true", was, err)
	}
	if _, active, _ := g.Check(ctx, e.acct); active || e.qs.isPaused(e.queue) {
		t.Fatal("manual Resume left the account paused")
	}
	was, err = g.Resume(ctx, e.acct)
	if err != nil || was {
		t.Fatalf("second Resume = %v, %v; want false", was, err)
	}
}

func TestResumeAll(t *testing.T) {
	// Always a private miniredis: ResumeAll resumes every registered account,
	// which on a shared Redis would include other tests' accounts.
	m := miniredis.RunT(t)
	r := &testutil.Redis{Client: redis.NewClient(&redis.Options{Addr: m.Addr()}), Mini: m}
	t.Cleanup(func() { _ = r.Client.Close() })
	ctx := context.Background()
	clk := clock.NewFake(time.Now())
	qs := newFakeQueues()
	g, err := New(r.Client, Config{Clock: clk, Queues: qs, SetBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	base := testutil.Name(t)
	names := []string{base + "-rec", base + "-queue", base + "-idle"}
	for _, a := range names {
		if err := g.Register(ctx, a, []string{"q-" + a}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			r.Client.Del(ctx, keys.Pause(a), keys.Queues(a))
			r.Client.SRem(ctx, keys.Accounts(), a)
		})
	}
	mustPause(t, g, names[0], PauseRequest{Until: clk.Now().Add(time.Hour), Kind: KindQuota})
	// Paused by the gate only at the asynq level (e.g. a crashed resume).
	if err := qs.PauseQueue("q-" + names[1]); err != nil {
		t.Fatal(err)
	}
	r.Client.HSet(ctx, keys.GateQueues(names[1]), "q-"+names[1], holdPaused)
	// Paused by an operator (asynqmon): not the gate's to resume.
	if err := qs.PauseQueue("q-" + names[2]); err != nil {
		t.Fatal(err)
	}

	got, err := g.ResumeAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Other tests may share the accounts set on a real Redis: keep ours.
	got = slices.DeleteFunc(got, func(a string) bool { return !slices.Contains(names, a) })
	slices.Sort(got)
	want := []string{names[1], names[0]}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("ResumeAll = %v, want %v", got, want)
	}
	for _, a := range names[:2] {
		if qs.isPaused("q-"+a) || r.Client.Exists(ctx, keys.Pause(a)).Val() != 0 {
			t.Fatalf("%s still paused", a)
		}
	}
	if !qs.isPaused("q-" + names[2]) {
		t.Fatal("ResumeAll unpaused a queue an operator paused")
	}
}

func TestStatus(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	ctx := context.Background()
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Reason: "quota", Kind: KindQuota})
	e.clk.Advance(10 * time.Minute)
	st, err := g.Status(ctx, e.acct)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Active || st.Remaining != 50*time.Minute || st.Record.Kind != KindQuota ||
		!slices.Equal(st.Queues, []string{e.queue}) || !slices.Equal(st.PausedQueues, []string{e.queue}) {
		t.Fatalf("Status = %+v", st)
	}
}

// waitNotify waits for the next change announced by g.Notify.
func waitNotify(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification within 5s")
	}
}

func TestRunPropagatesThroughPubSub(t *testing.T) {
	e := setup(t)
	a := e.gate(t, "a")
	// A check interval of a minute: only pub/sub can deliver within the test.
	b := e.gate(t, "b", func(c *Config) { c.CheckInterval = CheckIntervalMax })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, e.acct) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// Watch the raw channel too, to check the payload format.
	sub := e.r.Client.Subscribe(ctx, keys.Events(e.acct))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	<-b.Ready()

	ch := b.Notify()
	if _, active := b.Local(e.acct); active {
		t.Fatal("b paused before any pause")
	}
	until := e.clk.Now().Add(time.Hour)
	mustPause(t, a, e.acct, PauseRequest{Until: until, Reason: "429 x", Kind: KindRateLimit})
	waitNotify(t, ch)
	rec, active := b.Local(e.acct)
	if !active || !rec.Until.Equal(until) || rec.Kind != KindRateLimit || rec.SetBy != "a" {
		t.Fatalf("b.Local = %+v, %v", rec, active)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil {
		t.Fatal(err)
	}
	if want := (Event{Type: EventPause, UntilMs: until.UnixMilli(), Reason: "429 x", Kind: KindRateLimit}); ev != want {
		t.Fatalf("event = %+v, want %+v", ev, want)
	}

	ch = b.Notify()
	if _, err := a.Resume(context.Background(), e.acct); err != nil {
		t.Fatal(err)
	}
	waitNotify(t, ch)
	if _, active := b.Local(e.acct); active {
		t.Fatal("resume did not reach b")
	}
}

func TestRunFirstTickResumesExpiredPause(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g", func(c *Config) { c.CheckInterval = CheckIntervalMax })
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Minute), Kind: KindQuota})
	e.clk.Advance(time.Hour) // every worker was down when the pause ended

	starter := e.gate(t, "starter", func(c *Config) { c.CheckInterval = CheckIntervalMax })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- starter.Run(ctx, e.acct) }()
	<-starter.Ready()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, u := e.qs.counts(); u != 1 || e.qs.isPaused(e.queue) {
		t.Fatalf("first Tick of Run did not resume: unpauses=%d", u)
	}
}

// A sub-second rate-limit pause (the provider's "try again in 51ms") is a
// record only: no asynq queue pause. When it extends a long pause that had
// paused the queues, the queues still come back when it ends.
func TestSubSecondPauseNeverLeavesQueuesPaused(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	ctx := context.Background()

	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(51 * time.Millisecond), Kind: KindRateLimit})
	if e.qs.isPaused(e.queue) {
		t.Fatal("a 51 ms pause paused the asynq queue")
	}
	e.clk.Advance(51 * time.Millisecond)
	if err := g.Tick(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if _, active, _ := g.Check(ctx, e.acct); active || e.qs.isPaused(e.queue) {
		t.Fatal("the 51 ms pause outlived its end")
	}

	// A long pause pauses the queue; near its end a 51 ms pause extends it.
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(4 * time.Second), Kind: KindRateLimit})
	if !e.qs.isPaused(e.queue) {
		t.Fatal("a 4 s pause did not pause the queue")
	}
	e.clk.Advance(3990 * time.Millisecond)
	rec := mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(51 * time.Millisecond), Kind: KindRateLimit})
	if got := rec.Remaining(e.clk.Now()); got != 51*time.Millisecond {
		t.Fatalf("extended record remaining %v, want 51ms", got)
	}
	e.clk.Advance(51 * time.Millisecond)
	if err := g.Tick(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if e.qs.isPaused(e.queue) {
		t.Fatal("the queue stayed paused after the short pause that extended a long one ended")
	}
}
