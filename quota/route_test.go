package quota

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

// TestPeekPool: one round trip says, per account, how soon a request fits
// and how full the buckets are, and names an account that refuses it
// (paused wholly or for the model, daily budget spent), without admitting
// anything.
func TestPeekPool(t *testing.T) {
	t.Parallel()
	e := setupLimiter(t, Config{RPM: 60, TPM: 60_000, Burst: 10 * time.Second, Schedule: 2 * time.Second})
	accts := []string{e.acct + "-a", e.acct + "-b", e.acct + "-p", e.acct + "-m", e.acct + "-d"}
	for _, a := range accts {
		testutil.CleanupAccount(t, e.rdb.Client, a)
	}
	daily := e.with(Config{RPM: 60, TPM: 60_000, Burst: 10 * time.Second, Schedule: 2 * time.Second, DailyRequests: 2, Threshold: 1})
	cands := []Candidate{{e.l, accts[0]}, {e.l, accts[1]}, {e.l, accts[2]}, {e.l, accts[3]}, {daily, accts[4]}}
	in := Input{Chars: 100, Tokens: 90}

	// Drain b's 10-request bucket; pause p wholly and m for one model;
	// spend d's daily budget.
	for range 10 {
		if d, err := e.l.ReserveRequest(e.ctx, accts[1], in, 100); err != nil || !d.OK || d.Wait > 0 {
			t.Fatalf("drain b: %+v, %v", d, err)
		}
	}
	until := limStart.Add(time.Minute).UnixMilli()
	if err := e.rdb.Client.HSet(e.ctx, keys.Pause(accts[2]), "until", until).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Client.HSet(e.ctx, keys.PauseModels(accts[3]), "gpt-x", strconv.FormatInt(until, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if d, err := daily.ReserveRequest(e.ctx, accts[4], in, 100); err != nil || !d.OK {
			t.Fatalf("spend d: %+v, %v", d, err)
		}
	}
	before := dumpAccounts(t, e, accts)

	hs, err := Peek(e.ctx, e.rdb.Client, cands, in, 100, WithModel("gpt-x"))
	if err != nil {
		t.Fatal(err)
	}
	a, b, p, m, d := hs[0], hs[1], hs[2], hs[3], hs[4]
	if !a.Fits || a.Wait != 0 || a.Room() < 0.99 {
		t.Errorf("fresh account: %+v, want fits now with full buckets", a)
	}
	if !b.Fits || b.Wait < 900*time.Millisecond || b.Wait > 1100*time.Millisecond || b.Requests > 0.01 {
		t.Errorf("drained account: %+v, want fits after ~1s (one request at 60 RPM) with an empty request bucket", b)
	}
	if p.Fits || !p.Paused || p.PausedUntil.UnixMilli() != until {
		t.Errorf("paused account: %+v", p)
	}
	if m.Fits || !m.ModelPaused || m.PausedUntil.UnixMilli() != until {
		t.Errorf("account paused for gpt-x: %+v", m)
	}
	if d.Fits || !d.DailyExhausted {
		t.Errorf("daily budget spent: %+v", d)
	}

	// Another model is not held by m's model pause.
	hs, err = Peek(e.ctx, e.rdb.Client, cands[3:4], in, 100, WithModel("gpt-y"))
	if err != nil || !hs[0].Fits {
		t.Errorf("other model on m: %+v, %v", hs, err)
	}
	// And reserve refuses the paused model too.
	if dec, err := e.l.ReserveRequest(e.ctx, accts[3], in, 100, WithModel("gpt-x")); err != nil || dec.OK || !dec.ModelPaused {
		t.Errorf("reserve of the paused model: %+v, %v", dec, err)
	}

	// Peeking wrote nothing, on any key of any account (lapsed in-flight
	// entries aside: there are none here).
	after := dumpAccounts(t, e, accts)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("peek changed %s:\n before %s\n after  %s", k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("peek wrote %s", k)
		}
	}
}

// dumpAccounts is every key of the accounts with its value (and whether
// it expires).
func dumpAccounts(t *testing.T, e *limEnv, accts []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range accts {
		ks, err := e.rdb.Client.Keys(e.ctx, keys.AccountPattern(a)).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			c := e.rdb.Client
			var v any
			switch c.Type(e.ctx, k).Val() {
			case "hash":
				v = c.HGetAll(e.ctx, k).Val()
			case "zset":
				v = c.ZRangeWithScores(e.ctx, k, 0, -1).Val()
			case "set":
				v = c.SMembers(e.ctx, k).Val()
			default:
				v = c.Get(e.ctx, k).Val()
			}
			out[k] = fmt.Sprintf("%v expires:%v", v, c.PTTL(e.ctx, k).Val() > 0)
		}
	}
	return out
}

// TestScheduleLimit: a pooled reservation takes a scheduled turn only as far
// away as asked.
func TestScheduleLimit(t *testing.T) {
	t.Parallel()
	e := setupLimiter(t, Config{RPM: 60, Burst: 2 * time.Second, Schedule: 5 * time.Second})
	in := Input{Chars: 10}
	for range 2 {
		e.mustOK(Cost{Requests: 1}, 0)
	}
	d, err := e.l.ReserveRequest(e.ctx, e.acct, in, 10, WithScheduleLimit(500*time.Millisecond))
	if err != nil || d.OK || d.Wait < 900*time.Millisecond {
		t.Fatalf("turn 1s away with a 500ms limit: %+v, %v; want refused with the wait", d, err)
	}
	d, err = e.l.ReserveRequest(e.ctx, e.acct, in, 10, WithScheduleLimit(1500*time.Millisecond))
	if err != nil || !d.OK || d.Wait < 900*time.Millisecond {
		t.Fatalf("turn 1s away with a 1.5s limit: %+v, %v; want admitted on schedule", d, err)
	}
}
