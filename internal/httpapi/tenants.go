package httpapi

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/quota"
)

// TenantResponse is the body of GET and PUT /v1/tenants/{tenant}: the budget
// stored for the tenant.
type TenantResponse struct {
	Account string              `json:"account"`
	Tenant  string              `json:"tenant"`
	Budget  status.TenantBudget `json:"budget"`
}

// TenantBudgetRequest is the body of PUT /v1/tenants/{tenant}. It replaces the
// whole budget: a field left out is 0, no budget of that kind.
type TenantBudgetRequest struct {
	RPM           int64 `json:"rpm"`
	TPM           int64 `json:"tpm"`
	DailyRequests int64 `json:"daily_requests"`
	Weight        int64 `json:"weight"`
}

// handleListTenants is GET /v1/tenants?account=A, the API form of
// `promptq tenant list --json`: the account's tenants with a budget, sorted
// by name, [] when none.
func (s *Server) handleListTenants(w http.ResponseWriter, r *http.Request) {
	acct, ok := s.oneAccount(w, r)
	if !ok {
		return
	}
	ts, ok := s.tenants(w, r, acct)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, status.NewTenants(ts))
}

// handleGetTenant is GET /v1/tenants/{tenant}?account=A: one tenant's budget
// and use; 404 when the tenant has no budget.
func (s *Server) handleGetTenant(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantOf(w, r)
	if !ok {
		return
	}
	acct, ok := s.oneAccount(w, r)
	if !ok {
		return
	}
	ts, ok := s.tenants(w, r, acct)
	if !ok {
		return
	}
	for _, t := range status.NewTenants(ts) {
		if t.Tenant == tenant {
			writeJSON(w, http.StatusOK, t)
			return
		}
	}
	fail(w, http.StatusNotFound, CodeTenantNotFound, fmt.Sprintf("tenant %q has no budget in account %q", tenant, acct), "tenant")
}

func (s *Server) tenants(w http.ResponseWriter, r *http.Request, acct string) ([]quota.TenantState, bool) {
	ts, err := s.lim.Tenants(r.Context(), acct)
	if err != nil {
		s.log.Error().Err(err).Str("account", acct).Msg("listing tenants failed")
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "reading the tenants failed; Redis may be unreachable", "")
		return nil, false
	}
	return ts, true
}

// handleSetTenant is PUT /v1/tenants/{tenant}?account=A with a
// TenantBudgetRequest body, the API form of `promptq tenant set`.
func (s *Server) handleSetTenant(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantOf(w, r)
	if !ok {
		return
	}
	var req TenantBudgetRequest
	if !decodeBody(w, r, &req) {
		return
	}
	b := quota.TenantBudget{RPM: req.RPM, TPM: req.TPM, DailyRequests: req.DailyRequests, Weight: req.Weight}
	var be *quota.BudgetError
	if err := b.Validate(); errors.As(err, &be) {
		fail(w, http.StatusBadRequest, CodeInvalidField, be.Msg, cmp.Or(be.Field, "body"))
		return
	}
	acct, ok := s.oneAccount(w, r)
	if !ok {
		return
	}
	if err := s.lim.SetTenantBudget(r.Context(), acct, tenant, b); err != nil {
		s.log.Error().Err(err).Str("account", acct).Str("tenant", tenant).Msg("setting tenant budget failed")
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "storing the budget failed; Redis may be unreachable", "")
		return
	}
	s.log.Info().Str("account", acct).Str("tenant", tenant).Int64("rpm", b.RPM).Int64("tpm", b.TPM).
		Int64("daily_requests", b.DailyRequests).Int64("weight", b.Weight).Msg("tenant budget set through the API")
	writeJSON(w, http.StatusOK, TenantResponse{Account: acct, Tenant: tenant, Budget: status.NewTenantBudget(b)})
}

// handleDeleteTenant is DELETE /v1/tenants/{tenant}?account=A, the API form
// of `promptq tenant delete`: the tenant then shares the account freely.
// 204 when deleted, 404 when the tenant had no budget.
func (s *Server) handleDeleteTenant(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantOf(w, r)
	if !ok {
		return
	}
	acct, ok := s.oneAccount(w, r)
	if !ok {
		return
	}
	existed, err := s.lim.DeleteTenant(r.Context(), acct, tenant)
	if err != nil {
		s.log.Error().Err(err).Str("account", acct).Str("tenant", tenant).Msg("deleting tenant failed")
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "deleting the budget failed; Redis may be unreachable", "")
		return
	}
	if !existed {
		fail(w, http.StatusNotFound, CodeTenantNotFound, fmt.Sprintf("tenant %q has no budget in account %q", tenant, acct), "tenant")
		return
	}
	s.log.Info().Str("account", acct).Str("tenant", tenant).Msg("tenant budget deleted through the API")
	w.WriteHeader(http.StatusNoContent)
}

// tenantOf returns the validated {tenant} path segment. On failure it has
// already answered.
func tenantOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	tenant := r.PathValue("tenant")
	if err := keys.ValidateTenant(tenant); err != nil {
		fail(w, http.StatusBadRequest, CodeInvalidField, "must be 1-64 characters of A-Z a-z 0-9 _ . -", "tenant")
		return "", false
	}
	return tenant, true
}
