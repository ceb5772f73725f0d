package pausegate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Kind says why an account is paused. It is stored in the record's "kind"
// field, logged and shown by status and the admin API. Any non-empty value
// is accepted (a record read from Redis keeps whatever it holds); only
// KindManual is special: it alone may be indefinite.
type Kind string

// Pause kinds written by promptq. The first three share the spelling of
// the provider failure (backoff.Kind) that causes them; the worker maps one
// to the other.
const (
	// KindQuota: the account is out of credit (backoff.KindQuota).
	KindQuota Kind = "quota"
	// KindAuth: the key is refused, for every request (backoff.KindAuth)
	// or account-wide (backoff.KindForbidden).
	KindAuth Kind = "auth"
	// KindRateLimit: the provider asked to wait (backoff.KindRateLimit).
	KindRateLimit Kind = "rate_limit"
	// KindDaily: the account's daily budget reached its threshold.
	KindDaily Kind = "daily"
	// KindManual: an operator paused the account (promptq pause, the admin
	// API); may be indefinite.
	KindManual Kind = "manual"
)

// Indefinite is what Record.Remaining returns for a pause with no end.
const Indefinite time.Duration = math.MaxInt64

// ErrPaused is matched (errors.Is) by the error Gate.Allow returns while an
// account is paused.
var ErrPaused = errors.New("pausegate: paused")

// PausedError says an account is paused and until when. It matches ErrPaused.
type PausedError struct {
	Record     Record
	RetryAfter time.Duration // Indefinite for an indefinite pause
}

// Error describes the pause.
func (e *PausedError) Error() string {
	if e.Record.Until.IsZero() {
		return fmt.Sprintf("pausegate: account %s paused indefinitely (%s: %s)", e.Record.Account, e.Record.Kind, e.Record.Reason)
	}
	return fmt.Sprintf("pausegate: account %s paused for %v (%s: %s)", e.Record.Account, e.RetryAfter, e.Record.Kind, e.Record.Reason)
}

// Unwrap returns ErrPaused.
func (e *PausedError) Unwrap() error { return ErrPaused }

// Record is an account's pause record as stored in Redis. The zero Record
// means "no pause".
type Record struct {
	Account string
	Until   time.Time // zero = indefinite (manual pauses only)
	Reason  string
	Kind    Kind
	SetBy   string
	SetAt   time.Time

	present bool // a record exists in Redis
}

// Active reports whether the record stops work at now.
func (r Record) Active(now time.Time) bool {
	return r.present && (r.Until.IsZero() || r.Until.After(now))
}

// Remaining is how long the pause still lasts at now: 0 when inactive,
// Indefinite when it has no end.
func (r Record) Remaining(now time.Time) time.Duration {
	switch {
	case !r.Active(now):
		return 0
	case r.Until.IsZero():
		return Indefinite
	}
	return r.Until.Sub(now)
}

// untilMs is the record's "until" field as stored: "0" when indefinite.
func (r Record) untilMs() int64 {
	if r.Until.IsZero() {
		return 0
	}
	return r.Until.UnixMilli()
}

// recordFromFields builds a Record from the pause hash fields. until is the
// raw "until" field; ok is false when the hash is missing or unreadable.
func recordFromFields(account string, f map[string]string) (rec Record, rawUntil string, ok bool) {
	rawUntil, found := f["until"]
	if !found {
		return Record{}, "", false
	}
	u, err := strconv.ParseInt(rawUntil, 10, 64)
	if err != nil {
		return Record{}, rawUntil, false
	}
	rec = Record{Account: account, Reason: f["reason"], Kind: Kind(f["kind"]), SetBy: f["set_by"], present: true}
	if u != 0 {
		rec.Until = time.UnixMilli(u)
	}
	if at, err := strconv.ParseInt(f["set_at"], 10, 64); err == nil {
		rec.SetAt = time.UnixMilli(at)
	}
	return rec, rawUntil, true
}

// Event is the JSON message published on keys.Events(acct) when an
// account is paused or resumed.
type Event struct {
	Type    string `json:"type"`     // "pause" or "resume"
	UntilMs int64  `json:"until_ms"` // pause end in ms; 0 = indefinite
	Reason  string `json:"reason,omitempty"`
	Kind    Kind   `json:"kind,omitempty"`
}

// Event types.
const (
	EventPause  = "pause"
	EventResume = "resume"
)
