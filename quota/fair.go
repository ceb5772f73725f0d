package quota

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// Weighted fair sharing between the tenants of an account (lua/reserve.lua).
// Each tenant has a virtual time: the account capacity its admitted requests
// used (a request costs the larger of its share of the request rate and of
// the token rate, as ms of that rate) divided by its weight. When the
// account has headroom now, every request is admitted, so no capacity
// idles; a request that would take a scheduled turn (Config.Schedule) is
// refused with Decision.FairShare while its tenant is more than FairSlack
// ahead of another tenant with pending work, so tenants that keep asking
// get the short headroom in proportion to their weights, whatever their
// number of workers or the size of their requests (as long as a request
// fits within Config.Schedule of the account's rate). Fair sharing decides
// scheduled turns only: a Limiter without scheduling (Config.Schedule 0)
// admits first come, first served.
const (
	// FairGrace is how long a tenant keeps counting as having pending work
	// after its last request waiting for headroom (a scheduled turn or a
	// refusal's wait) ends. It covers the time until a tenant with a
	// backlog asks again: its worker's call and the next task's start. A
	// tenant whose calls take longer, or that has no more work, drops out
	// after it, and the others stop yielding to it.
	FairGrace = 3 * time.Second
	// FairSlack is how far ahead (in ms of account capacity, divided by
	// weight) a tenant may run before it yields scheduled turns.
	FairSlack = 500 * time.Millisecond
	// FairMaxLag is how far behind the others a tenant with pending work
	// that uses little may fall: the most credit it can bank. It must be
	// well over FairSlack, or a tenant that is behind would be raised to
	// within the slack at each request and the others would never yield.
	// A tenant whose pending work ended starts level with the others.
	FairMaxLag = 2 * time.Second
	// FairRetry is the shortest Wait of a FairShare refusal: a tenant that
	// yields asks again no sooner, so its workers do not all ask the moment
	// the next unit of headroom is due.
	FairRetry = 250 * time.Millisecond
)

// fairGrace is FairGrace, or 0 (no fair sharing) with Config.NoFairShare.
func (l *Limiter) fairGrace() time.Duration {
	if l.cfg.NoFairShare {
		return 0
	}
	return FairGrace
}

// FairState is one tenant's place in weighted fair sharing (see FairSlack).
type FairState struct {
	Tenant string `json:"tenant"` // "" = requests without a tenant
	Weight int64  `json:"weight"`
	// PendingUntil is when its pending work ends unless it asks again.
	PendingUntil time.Time `json:"pending_until"`
	// Lead is how far the tenant is ahead of the tenant with pending work
	// that is furthest behind, in account capacity divided by weight. Over
	// FairSlack, the tenant yields its scheduled turns to the others.
	Lead time.Duration `json:"lead_ns"`
}

// Yielding reports whether the tenant's requests are refused scheduled
// turns (Decision.FairShare) for now.
func (f FairState) Yielding() bool { return f.Lead > FairSlack }

// fairStates reads the tenants with pending work; ts gives the weights.
func (l *Limiter) fairStates(ctx context.Context, account string, now time.Time, ts []TenantState) ([]FairState, error) {
	res, err := fairStateScript.RunRO(ctx, l.rdb, []string{keys.FairSeen(account), keys.FairVT(account)},
		now.UnixMilli()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("quota: fair share %s: %w", account, err)
	}
	weight := map[string]int64{}
	for _, t := range ts {
		weight[t.Tenant] = t.Budget.Weight
	}
	var out []FairState
	var vts []float64
	low := math.Inf(1)
	for i := 0; i+2 < len(res); i += 3 {
		until, _ := strconv.ParseFloat(res[i+1], 64)
		vt, err := strconv.ParseFloat(res[i+2], 64)
		if err != nil {
			continue // pending, but its virtual time is gone (expired)
		}
		out = append(out, FairState{Tenant: res[i], Weight: max(1, weight[res[i]]), PendingUntil: time.UnixMilli(int64(until))})
		vts = append(vts, vt)
		low = min(low, vt)
	}
	for i := range out {
		out[i].Lead = time.Duration((vts[i] - low) * float64(time.Millisecond))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out, nil
}
