// Package clock provides the injectable time source used by quota/ and
// pausegate/, so tests can drive time instead of sleeping.
package clock

import (
	"sync"
	"time"
)

// Clock tells the current time.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Fake is a clock that moves only when told to. It is safe for concurrent use.
type Fake struct {
	mu sync.Mutex
	t  time.Time
}

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{t: t} }

// Now returns the fake's current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// Advance moves the fake forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// Set moves the fake to t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

// ScriptNow is the "now" argument of promptq's Lua scripts: "" for every
// clock but Fake, so the script reads Redis's own clock (TIME) and no
// worker's clock, however wrong, moves shared state; Fake's time in ms,
// so tests can drive the scripts. Production code never builds a Fake.
func ScriptNow(c Clock) any {
	if f, ok := c.(*Fake); ok {
		return f.Now().UnixMilli()
	}
	return ""
}

// Skewed is a clock off by a fixed offset: a host whose clock is wrong
// (PROMPTQ_CLOCK_SKEW simulates one in tests of the one-clock rule).
type Skewed struct{ Offset time.Duration }

// Now returns time.Now() plus the offset.
func (s Skewed) Now() time.Time { return time.Now().Add(s.Offset) }
