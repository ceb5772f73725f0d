package keys

import "fmt"

// ValidateTenant reports whether name can be used as a tenant name: the same
// rule as an account name, 1 to 64 characters from [A-Za-z0-9_.-].
func ValidateTenant(name string) error {
	if !accountRE.MatchString(name) {
		return fmt.Errorf("tenant %q: must be 1-64 characters of A-Z a-z 0-9 _ . -", name)
	}
	return nil
}

// Tenants is the hash of the account's tenant budgets (field = tenant name,
// value = the budget as compact JSON). See quota.TenantBudget.
func Tenants(acct string) string { return tag(acct) + "tenants" }

// Tenant is the hash of one tenant's bucket levels and daily request count
// inside the account.
func Tenant(acct, tenant string) string { return tag(acct) + "tenant:" + tenant }

// FairSeen is the sorted set of the account's tenants with pending work
// (member = tenant name, "" for requests without one; score = ms epoch
// until which it has pending work), for weighted fair sharing
// (quota/lua/reserve.lua).
func FairSeen(acct string) string { return tag(acct) + "fair:seen" }

// FairVT is the sorted set of the tenants' virtual times (member = tenant
// name, score = account capacity used so far, in ms, divided by the
// tenant's weight).
func FairVT(acct string) string { return tag(acct) + "fair:vt" }
