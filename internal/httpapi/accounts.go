package httpapi

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/promptq/promptq/internal/keys"
)

// Every route that acts on accounts names one the same way: ?account=A. An
// account is known once a worker has run for it (Config.Accounts); the API
// refuses an unknown one with 404 and never creates one.

// accounts returns the account named by ?account= (known), else every known
// account. On failure it has already answered.
func (s *Server) accounts(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	if name := r.URL.Query().Get("account"); name != "" {
		if !s.knownAccount(w, r, name) {
			return nil, false
		}
		return []string{name}, true
	}
	accts, err := s.cfg.Accounts(r.Context())
	if err != nil {
		s.log.Error().Err(err).Msg("listing accounts failed")
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "listing the accounts failed; Redis may be unreachable", "")
		return nil, false
	}
	return accts, true
}

// oneAccount returns the account named by ?account=, else the only known
// account. On failure it has already answered.
func (s *Server) oneAccount(w http.ResponseWriter, r *http.Request) (string, bool) {
	accts, ok := s.accounts(w, r)
	if !ok {
		return "", false
	}
	switch len(accts) {
	case 1:
		return accts[0], true
	case 0:
		fail(w, http.StatusConflict, CodeNoAccount, "no account known yet: no worker has run", "account")
	default:
		fail(w, http.StatusBadRequest, CodeAccountRequired, fmt.Sprintf("%d accounts are known; name one with ?account=", len(accts)), "account")
	}
	return "", false
}

// knownAccount reports whether name is a valid, known account. When it is
// not it has already answered: 400 for a malformed name, 404 for an unknown one.
func (s *Server) knownAccount(w http.ResponseWriter, r *http.Request, name string) bool {
	if err := keys.ValidateAccount(name); err != nil {
		fail(w, http.StatusBadRequest, CodeInvalidField, "must be 1-64 characters of A-Z a-z 0-9 _ . -", "account")
		return false
	}
	accts, err := s.cfg.Accounts(r.Context())
	if err != nil {
		s.log.Error().Err(err).Msg("listing accounts failed")
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "listing the accounts failed; Redis may be unreachable", "")
		return false
	}
	if !slices.Contains(accts, name) {
		fail(w, http.StatusNotFound, CodeAccountNotFound, fmt.Sprintf("no account %q is known (no worker has run for it)", name), "account")
		return false
	}
	return true
}
