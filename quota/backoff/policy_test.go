package backoff

import "testing"

func TestTooLarge(t *testing.T) {
	rl := &Error{Kind: KindRateLimit, Message: "Request too large"}
	if got := TooLarge(rl, 40_000, 30_000); got.Kind != KindInvalid || !got.Permanent {
		t.Errorf("40k against a 30k limit: %+v, want permanent invalid", got)
	}
	for _, c := range []struct {
		need, limit int64
	}{{20_000, 30_000}, {40_000, 0}} {
		if got := TooLarge(rl, c.need, c.limit); got != rl {
			t.Errorf("need %d, limit %d: re-classified to %+v", c.need, c.limit, got)
		}
	}
	q := &Error{Kind: KindQuota}
	if got := TooLarge(q, 40_000, 30_000); got != q {
		t.Errorf("a quota error was re-classified: %+v", got)
	}
}

func TestAccountRefused(t *testing.T) {
	for _, c := range []struct {
		name      string
		e         *Error
		refused   bool
		modelOnly bool
	}{
		{"insufficient_quota", &Error{Kind: KindQuota, Code: "insufficient_quota"}, true, false},
		{"401", &Error{Kind: KindAuth, StatusCode: 401}, true, false},
		{"403 account", &Error{Kind: KindForbidden, AccountWide: true}, true, false},
		{"403 one model", &Error{Kind: KindForbidden, Code: CodeModelNotFound}, true, true},
		{"404 model_not_found", &Error{Kind: KindInvalid, Code: CodeModelNotFound, Permanent: true}, true, true},
		{"403 other", &Error{Kind: KindForbidden}, false, false},
		{"invalid", &Error{Kind: KindInvalid, Permanent: true}, false, false},
		{"429", &Error{Kind: KindRateLimit}, false, false},
		{"500", &Error{Kind: KindServer}, false, false},
		{"nil", nil, false, false},
	} {
		if got := AccountRefused(c.e); got != c.refused {
			t.Errorf("%s: AccountRefused = %v, want %v", c.name, got, c.refused)
		}
		if got := ModelOnly(c.e); got != c.modelOnly {
			t.Errorf("%s: ModelOnly = %v, want %v", c.name, got, c.modelOnly)
		}
	}
}
