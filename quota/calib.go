package quota

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/promptq/promptq/internal/keys"
)

// Input is what is known of a request's input before it is sent: the two
// bases from which the limiter estimates the input tokens the provider will
// charge (see ReserveRequest).
type Input struct {
	// Chars is ceil(characters/4) of everything sent (instructions and every
	// message), plus framing per message: OpenAI's documented estimate.
	Chars int64
	// Tokens is the model's tokenizer count of the same, plus framing per
	// message; 0 when no tokenizer is known for the model.
	Tokens int64
}

// Initial is the estimate before anything is learned: the larger basis.
func (in Input) Initial() int64 { return max(in.Chars, in.Tokens) }

// sentMember is the reservation's entry in the sent set (calib.lua):
// id:chars:tokens:max_output.
func (r Reservation) sentMember() string {
	in := r.Input
	if in == (Input{}) {
		in = Input{Chars: r.EstimatedInput, Tokens: r.EstimatedInput}
	}
	return r.ID + ":" + strconv.FormatInt(in.Chars, 10) + ":" + strconv.FormatInt(max(in.Tokens, 0), 10) + ":" +
		strconv.FormatInt(max(0, r.Cost.Tokens-r.EstimatedInput), 10)
}

// Estimate returns the input tokens ReserveRequest would reserve for in now,
// under what the account's calibration has learned so far.
func (l *Limiter) Estimate(ctx context.Context, account string, in Input) (int64, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return 0, fmt.Errorf("quota: %w", err)
	}
	n, err := estimateScript.RunRO(ctx, l.rdb, []string{keys.Calib(account)}, in.Chars, in.Tokens).Int64()
	if err != nil {
		return 0, fmt.Errorf("quota: estimate %s: %w", account, err)
	}
	return n, nil
}

// CalibrationRing is how many recent samples the calibration keeps (the
// CAL_RING of lua/calib.lua).
const CalibrationRing = 24

// Calibration is what the limiter learned of how the provider counts a
// request's input (see "Cost calibration" in the package doc).
type Calibration struct {
	// Source is where the samples came from: "headers" (remaining tokens
	// between responses), "usage" (a provider without rate-limit headers)
	// or "" (nothing learned yet: the larger basis is reserved).
	Source string
	// Basis is the estimate's basis in force: "chars" (characters/4 plus
	// framing), "tokens" (the tokenizer's count plus framing) or "" (none
	// yet: the larger of the two).
	Basis string
	// Factor multiplies the basis: the upper quantile of the charge/basis
	// ratios in the ring (0 = none yet).
	Factor float64
	// Spread is the ring's (q90 - q10) / median on the basis in force: how
	// well the basis predicts the charge (0 = exactly).
	Spread float64
	// Ring is how many samples the ring holds now (at most CalibrationRing);
	// Samples how many were taken in all.
	Ring, Samples int64
	// Bad counts accounting signals refused as absurd (remaining above the
	// limit, a charge far above the estimate, negative usage); Missing
	// counts responses without a remaining-tokens figure. Neither moves the
	// estimate or raises a level.
	Bad, Missing int64
}

// calibration reads the calib hash (fields: see lua/calib.lua).
func calibration(h map[string]string) Calibration {
	c := Calibration{Source: h["src"], Samples: int64(num(h, "n")), Bad: int64(num(h, "bad")), Missing: int64(num(h, "missing"))}
	ring := "rc"
	switch h["basis"] {
	case "c":
		c.Basis, c.Factor, c.Spread = "chars", num(h, "kc"), num(h, "sc")
	case "t":
		c.Basis, c.Factor, c.Spread, ring = "tokens", num(h, "kt"), num(h, "st"), "rt"
	}
	if r := h[ring]; r != "" {
		c.Ring = int64(strings.Count(r, ",") + 1)
	}
	return c
}
