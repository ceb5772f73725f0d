package answer_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/answer"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

func setup(t *testing.T) (*testutil.Redis, *answer.Store, string) {
	t.Helper()
	r := testutil.NewRedis(t)
	acct := testutil.Name(t)
	testutil.CleanupAccount(t, r.Client, acct)
	st, err := answer.NewStore(r.Client, answer.Config{Account: acct, ClaimTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return r, st, acct
}

func TestClaim(t *testing.T) {
	t.Parallel()
	_, st, _ := setup(t)
	ctx := t.Context()
	c, err := st.Claim(ctx, "t1", "w1/1")
	if err != nil || c.State != answer.Mine {
		t.Fatalf("first claim: %+v, %v; want Mine", c, err)
	}
	c, err = st.Claim(ctx, "t1", "w2/1")
	if err != nil || c.State != answer.Claimed || c.Owner != "w1/1" || c.Remaining <= 0 || c.Remaining > time.Minute {
		t.Fatalf("second claim: %+v, %v; want Claimed by w1/1 for up to 1m", c, err)
	}
	// A release by someone else does nothing; by the owner frees the task.
	if err := st.Release(ctx, "t1", "w2/1"); err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Claim(ctx, "t1", "w2/1"); c.State != answer.Claimed {
		t.Fatalf("after a foreign release: %+v, want still Claimed", c)
	}
	if err := st.Release(ctx, "t1", "w1/1"); err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Claim(ctx, "t1", "w2/1"); c.State != answer.Mine {
		t.Fatalf("after the owner's release: %+v, want Mine", c)
	}
	// The answer replaces the claim and is never released.
	if err := st.Put(ctx, "t1", []byte(`{"output_text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	_ = st.Release(ctx, "t1", "w2/1")
	c, err = st.Claim(ctx, "t1", "w3/1")
	if err != nil || c.State != answer.Done || string(c.Answer) != `{"output_text":"hi"}` {
		t.Fatalf("after Put: %+v, %v; want Done with the answer", c, err)
	}
}

func TestTakeover(t *testing.T) {
	t.Parallel()
	r, st, acct := setup(t)
	ctx := t.Context()
	if c, _ := st.Claim(ctx, "t1", "dead/1"); c.State != answer.Mine {
		t.Fatal("claim")
	}
	// The owner is alive: no takeover.
	r.Client.Set(ctx, keys.Alive(acct, "dead"), "1", time.Minute)
	if n, err := st.Takeover(ctx, "t1", "dead/1", "w2/1"); err != nil || n != answer.OwnerAlive {
		t.Fatalf("takeover of a live owner: %d, %v; want OwnerAlive", n, err)
	}
	// Gone: suspected first, taken over only after the grace (Redis time).
	r.Client.Del(ctx, keys.Alive(acct, "dead"))
	if n, err := st.Takeover(ctx, "t1", "dead/1", "w2/1"); err != nil || n != answer.OwnerSuspect {
		t.Fatalf("first look at a dead owner: %d, %v; want OwnerSuspect", n, err)
	}
	if n, _ := st.Takeover(ctx, "t1", "dead/1", "w2/1"); n != answer.OwnerSuspect {
		t.Fatalf("second look within the grace: %d; want OwnerSuspect", n)
	}
	// Move the suspicion back in time instead of sleeping.
	old := time.Now().Add(-answer.TakeoverGrace - time.Second).UnixMilli()
	r.Client.Set(ctx, keys.Suspect(acct, "dead"), old, time.Minute)
	if n, err := st.Takeover(ctx, "t1", "dead/1", "w2/1"); err != nil || n != answer.TakenOver {
		t.Fatalf("after the grace: %d, %v; want TakenOver", n, err)
	}
	if c, _ := st.Claim(ctx, "t1", "w2/1"); c.State != answer.Mine {
		t.Fatalf("claim after takeover: %+v, want Mine", c)
	}
	// A stale view of the record changes nothing.
	if n, _ := st.Takeover(ctx, "t1", "dead/1", "w3/1"); n != answer.ClaimChanged {
		t.Fatalf("takeover with a stale claim: %d, want ClaimChanged", n)
	}
}

func TestSpoolSurvivesRestart(t *testing.T) {
	t.Parallel()
	_, st, acct := setup(t)
	ctx := t.Context()
	dir := answer.SpoolDir(t.TempDir(), acct)
	sp, err := answer.OpenSpool(dir, st, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(answer.Entry{Account: acct, TaskID: "a/b", Answer: []byte(`{"output_text":"paid"}`)}); err != nil {
		t.Fatal(err)
	}
	// Another process opens the same directory: the answer is there.
	sp2, err := answer.OpenSpool(dir, st, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := sp2.Get("a/b"); !ok || string(e.Answer) != `{"output_text":"paid"}` {
		t.Fatalf("reopened spool: %+v %v", e, ok)
	}
	if err := sp2.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Claim(ctx, "a/b", "w/1"); c.State != answer.Done {
		t.Fatalf("after the flush: %+v, want Done", c)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 0 || sp2.Len() != 0 {
		t.Fatalf("spool after the flush: %d files, %d entries; want none", len(files), sp2.Len())
	}
	// A torn file is set aside, never deleted.
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte("{tor"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := answer.OpenSpool(dir, st, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.json.bad")); err != nil {
		t.Fatalf("torn file not kept aside: %v", err)
	}
}
