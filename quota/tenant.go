package quota

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// TenantBurst is the capacity of a tenant's buckets, as refill time: a
// tenant capped at 600 requests/min holds 50 requests, so its cap binds
// within seconds instead of after a minute of the account's full rate.
const TenantBurst = 5 * time.Second

// TenantBudget is one tenant's share of an account (0 = no budget of that kind).
type TenantBudget struct {
	RPM           int64 `json:"rpm,omitempty"`            // requests per minute
	TPM           int64 `json:"tpm,omitempty"`            // tokens per minute
	DailyRequests int64 `json:"daily_requests,omitempty"` // requests per budget day (Config.Location)
	// Weight is the tenant's share of the account's headroom against other
	// tenants with pending work, when the headroom is short (0 = 1; at most
	// MaxTenantWeight): weights 3 and 1 split it 3:1.
	Weight int64 `json:"weight,omitempty"`
}

// MaxTenantWeight is the largest TenantBudget.Weight.
const MaxTenantWeight = 1000

// BudgetError is a TenantBudget that Validate refuses. Field is the JSON
// name of the offending field ("" when the budget as a whole is empty).
type BudgetError struct {
	Field, Msg string
}

func (e *BudgetError) Error() string { return "quota: tenant budget: " + e.Msg }

// Validate checks b: no negative value, Weight at most MaxTenantWeight, and
// at least one value set. It returns a *BudgetError.
func (b TenantBudget) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"rpm", b.RPM}, {"tpm", b.TPM}, {"daily_requests", b.DailyRequests}} {
		if f.v < 0 {
			return &BudgetError{f.name, fmt.Sprintf("%s %d: must be >= 0 (0 = no such budget)", f.name, f.v)}
		}
	}
	if b.Weight < 0 || b.Weight > MaxTenantWeight {
		return &BudgetError{"weight", fmt.Sprintf("weight %d: must be between 0 (= 1) and %d", b.Weight, MaxTenantWeight)}
	}
	if b == (TenantBudget{}) {
		return &BudgetError{"", "empty budget: set at least one of rpm, tpm, daily_requests, weight (or delete the tenant)"}
	}
	return nil
}

// SetTenantBudget sets (or replaces) tenant's budget inside account. It
// takes effect at the next Reserve on any worker; the tenant's use so far
// is kept, so lowering a budget holds back a tenant that already used more.
func (l *Limiter) SetTenantBudget(ctx context.Context, account, tenant string, b TenantBudget) error {
	if err := b.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return err
	}
	_, err = l.setTenant(ctx, account, tenant, string(raw))
	return err
}

// DeleteTenant removes tenant's budget and levels from account: the tenant
// then shares the account's headroom freely. It reports whether the tenant
// had a budget.
func (l *Limiter) DeleteTenant(ctx context.Context, account, tenant string) (bool, error) {
	return l.setTenant(ctx, account, tenant, "")
}

func (l *Limiter) setTenant(ctx context.Context, account, tenant, raw string) (bool, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return false, fmt.Errorf("quota: %w", err)
	}
	if err := keys.ValidateTenant(tenant); err != nil {
		return false, fmt.Errorf("quota: %w", err)
	}
	existed, err := tenantSetScript.Run(ctx, l.rdb, []string{keys.Tenants(account), keys.Tenant(account, tenant)}, tenant, raw).Int64()
	if err != nil {
		return false, fmt.Errorf("quota: tenant %s/%s: %w", account, tenant, err)
	}
	return existed == 1, nil
}

// TenantState is one tenant's budget and use, for `promptq status` and
// `promptq tenant list`.
type TenantState struct {
	Tenant string       `json:"tenant"`
	Budget TenantBudget `json:"budget"`
	// Requests and Tokens are what the tenant could reserve now under its
	// RPM and TPM budgets (negative = in debt); 0 for a kind without budget.
	Requests float64 `json:"requests_available"`
	Tokens   float64 `json:"tokens_available"`
	// DailyRequests is the tenant's requests today (including in flight).
	DailyRequests int64 `json:"daily_requests_used"`
}

// Tenants returns the budgets of account's tenants and their use now, sorted
// by name.
func (l *Limiter) Tenants(ctx context.Context, account string) ([]TenantState, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return nil, fmt.Errorf("quota: %w", err)
	}
	now := l.cfg.Clock.Now()
	res, err := l.tenantState(ctx, []string{keys.Tenants(account)}, now, nil)
	if err != nil || len(res) != 1 {
		return nil, fmt.Errorf("quota: tenants %s: %v", account, err)
	}
	budgets := pairs(res[0])
	if len(budgets) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(budgets))
	for t := range budgets {
		names = append(names, t)
	}
	sort.Strings(names)
	ks := []string{keys.Tenants(account)}
	for _, t := range names {
		ks = append(ks, keys.Tenant(account, t))
	}
	// A second read gets budgets and levels in one consistent view.
	if res, err = l.tenantState(ctx, ks, now, names); err != nil || len(res) != len(ks) {
		return nil, fmt.Errorf("quota: tenants %s: %v", account, err)
	}
	budgets = pairs(res[0])
	out := make([]TenantState, 0, len(names))
	for i, t := range names {
		raw, ok := budgets[t]
		if !ok {
			continue // deleted between the two reads
		}
		var b TenantBudget
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			return nil, fmt.Errorf("quota: tenant %s/%s: bad budget %q: %w", account, t, raw, err)
		}
		// {HGETALL, requests level, tokens level}, by tenant_state.lua
		ts, _ := res[i+1].([]any)
		if len(ts) != 3 {
			return nil, fmt.Errorf("quota: tenants %s: unexpected reply", account)
		}
		h := pairs(ts[0])
		st := TenantState{Tenant: t, Budget: b, Requests: parseFloat(ts[1]), Tokens: parseFloat(ts[2])}
		if h["day"] == l.date(now) {
			st.DailyRequests = int64(num(h, "dreq"))
		}
		out = append(out, st)
	}
	return out, nil
}

// tenantState runs tenant_state.lua on ks, the tenants hash and then the
// hashes of the tenants names.
func (l *Limiter) tenantState(ctx context.Context, ks []string, now time.Time, names []string) ([]any, error) {
	args := []any{now.UnixMilli(), TenantBurst.Milliseconds()}
	for _, n := range names {
		args = append(args, n)
	}
	return tenantStateScript.RunRO(ctx, l.rdb, ks, args...).Slice()
}
