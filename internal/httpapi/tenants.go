package httpapi

import (
	"fmt"
	"net/http"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/quota"
)

// TenantResponse is the body of a PUT /v1/tenants/{tenant} response: the
// budget now stored for the tenant.
type TenantResponse struct {
	Account string             `json:"account"`
	Tenant  string             `json:"tenant"`
	Budget  quota.TenantBudget `json:"budget"`
}

// DeleteTenantResponse is the body of a DELETE /v1/tenants/{tenant}
// response. Deleted is false when the tenant had no budget, which is not an
// error, as resuming an account that was not paused is not one.
type DeleteTenantResponse struct {
	Account string `json:"account"`
	Tenant  string `json:"tenant"`
	Deleted bool   `json:"deleted"`
}

// handleListTenants is GET /v1/tenants?account=A, the API form of
// `promptq tenant list --json`: the account's tenants with a budget, sorted
// by name, [] when none.
func (s *Server) handleListTenants(w http.ResponseWriter, r *http.Request) {
	acct, ok := s.oneAccount(w, r)
	if !ok {
		return
	}
	ts, err := s.lim.Tenants(r.Context(), acct)
	if err != nil {
		s.log.Error().Err(err).Str("account", acct).Msg("listing tenants failed")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("tenants %s: %v", acct, err), "")
		return
	}
	if ts == nil {
		ts = []quota.TenantState{}
	}
	writeJSON(w, http.StatusOK, ts)
}

// handleSetTenant is PUT /v1/tenants/{tenant}?account=A with a
// quota.TenantBudget body, the API form of `promptq tenant set`. It replaces
// the whole budget: a field left out is 0, no budget of that kind.
func (s *Server) handleSetTenant(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if err := keys.ValidateTenant(tenant); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "tenant")
		return
	}
	var b quota.TenantBudget
	if !decodeBody(w, r, &b) {
		return
	}
	if msg, field := validateBudget(b); msg != "" {
		writeError(w, http.StatusBadRequest, msg, field)
		return
	}
	acct, ok := s.oneAccount(w, r)
	if !ok {
		return
	}
	if err := s.lim.SetTenantBudget(r.Context(), acct, tenant, b); err != nil {
		s.log.Error().Err(err).Str("account", acct).Str("tenant", tenant).Msg("setting tenant budget failed")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("tenant %s/%s: %v", acct, tenant, err), "")
		return
	}
	s.log.Info().Str("account", acct).Str("tenant", tenant).Int64("rpm", b.RPM).Int64("tpm", b.TPM).
		Int64("daily_requests", b.DailyRequests).Int64("weight", b.Weight).Msg("tenant budget set through the API")
	writeJSON(w, http.StatusOK, TenantResponse{Account: acct, Tenant: tenant, Budget: b})
}

// handleDeleteTenant is DELETE /v1/tenants/{tenant}?account=A, the API form
// of `promptq tenant delete`: the tenant then shares the account freely.
func (s *Server) handleDeleteTenant(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if err := keys.ValidateTenant(tenant); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "tenant")
		return
	}
	acct, ok := s.oneAccount(w, r)
	if !ok {
		return
	}
	existed, err := s.lim.DeleteTenant(r.Context(), acct, tenant)
	if err != nil {
		s.log.Error().Err(err).Str("account", acct).Str("tenant", tenant).Msg("deleting tenant failed")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("tenant %s/%s: %v", acct, tenant, err), "")
		return
	}
	s.log.Info().Str("account", acct).Str("tenant", tenant).Bool("existed", existed).Msg("tenant budget deleted through the API")
	writeJSON(w, http.StatusOK, DeleteTenantResponse{Account: acct, Tenant: tenant, Deleted: existed})
}

// validateBudget checks b as quota.Limiter.SetTenantBudget does, but names
// the offending JSON field. It returns "" when b is valid.
func validateBudget(b quota.TenantBudget) (msg, field string) {
	for _, f := range []struct {
		name string
		v    int64
	}{{"rpm", b.RPM}, {"tpm", b.TPM}, {"daily_requests", b.DailyRequests}} {
		if f.v < 0 {
			return fmt.Sprintf("%s %d: must be >= 0 (0 = no such budget)", f.name, f.v), f.name
		}
	}
	if b.Weight < 0 || b.Weight > quota.MaxTenantWeight {
		return fmt.Sprintf("weight %d: must be between 0 (= 1) and %d", b.Weight, quota.MaxTenantWeight), "weight"
	}
	if b == (quota.TenantBudget{}) {
		return "empty budget: give at least one of rpm, tpm, daily_requests, weight above 0 (or DELETE the tenant)", "body"
	}
	return "", ""
}

// oneAccount returns the account named by the "account" query parameter
// (validated), else the only known account, as /v1/status picks them. On
// failure it has already answered.
func (s *Server) oneAccount(w http.ResponseWriter, r *http.Request) (string, bool) {
	accts, ok := s.accountsFor(w, r.Context(), r.URL.Query().Get("account"))
	if !ok {
		return "", false
	}
	switch len(accts) {
	case 1:
		return accts[0], true
	case 0:
		writeError(w, http.StatusConflict, "no account known yet (no worker has run); name one with ?account=", "account")
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d accounts known; name one with ?account=", len(accts)), "account")
	}
	return "", false
}
