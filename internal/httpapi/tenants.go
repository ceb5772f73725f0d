package httpapi

import (
	"cmp"
	"errors"
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
	var be *quota.BudgetError
	if err := b.Validate(); errors.As(err, &be) {
		writeError(w, http.StatusBadRequest, be.Msg, cmp.Or(be.Field, "body"))
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
