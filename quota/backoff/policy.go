package backoff

import "fmt"

// CodeModelNotFound is the provider's code for a model the account does
// not serve (404, or 403 for a model the project may not use).
const CodeModelNotFound = "model_not_found"

// TooLarge re-classifies a rate-limit refusal of a request that needs more
// tokens than the account's whole token limit: OpenAI answers "Request too
// large" with a 429 too, and such a request can never succeed there. need
// is the request's token cost, limit the limit the provider reported (0 =
// unknown: c is returned as it is).
func TooLarge(c *Error, need, limit int64) *Error {
	if c == nil || c.Kind != KindRateLimit || limit <= 0 || need <= limit {
		return c
	}
	return &Error{Kind: KindInvalid, Permanent: true, StatusCode: c.StatusCode, Code: c.Code, Err: c.Err,
		Message: fmt.Sprintf("request needs about %d tokens, more than the token limit of %d: %s", need, limit, c.Message)}
}

// AccountRefused reports whether a failure refuses the account that sent
// the request rather than the request itself, so that another account (of
// a pool) may well succeed: out of quota or billing, a key refused, an
// account-wide 403, or a model the account does not serve (ModelOnly).
func AccountRefused(c *Error) bool {
	if c == nil {
		return false
	}
	switch c.Kind {
	case KindQuota, KindAuth:
		return true
	case KindForbidden:
		return c.AccountWide || c.Code == CodeModelNotFound
	}
	return ModelOnly(c)
}

// ModelOnly reports whether a failure refuses one model of the account
// (model_not_found), not the whole account.
func ModelOnly(c *Error) bool {
	return c != nil && c.Code == CodeModelNotFound && (c.Kind == KindInvalid || c.Kind == KindForbidden) && !c.AccountWide
}
