package quota

import (
	"strconv"
	"time"
)

// Cost is what one request counts against the provider's limits at
// admission: OpenAI counts 1 request and input tokens + max_output_tokens.
type Cost struct {
	Requests, Tokens int64
}

// Reservation is an admitted request's claim on the buckets. Pass it to
// exactly one of Settle or Refund when the provider has answered.
type Reservation struct {
	Account        string
	Tenant         string // the producer inside the account (WithTenant); "" = none
	ID             string
	Cost           Cost
	At             time.Time // when it may be sent: admission time plus any scheduled wait (ms precision)
	EstimatedInput int64     // input tokens estimated before the call (0 = no estimate)
	Input          Input     // the bases of the estimate (ReserveRequest), for calibration
}

// member is the reservation's entry in the in-flight set: id:requests:tokens:at_ms.
func (r Reservation) member() string {
	return r.memberPrefix() + ":" + strconv.FormatInt(r.Cost.Tokens, 10) + ":" + strconv.FormatInt(r.At.UnixMilli(), 10)
}

// memberPrefix is the member without its token cost and time, which
// reserve.lua appends.
func (r Reservation) memberPrefix() string {
	return r.ID + ":" + strconv.FormatInt(r.Cost.Requests, 10)
}

// Decision is Reserve's answer.
type Decision struct {
	// OK means the request is admitted; Reservation is then valid. With
	// Config.Schedule, Wait may be > 0: send only after waiting that long.
	OK          bool
	Reservation Reservation
	// Wait is, when !OK and neither paused nor exhausted, how long until the
	// cost fits (if nobody else takes the capacity first); when OK, how long
	// to wait before sending (0 without scheduling).
	Wait time.Duration
	// Paused means a pause record is active; PausedUntil is its end (zero =
	// indefinite, until someone resumes the account).
	Paused      bool
	PausedUntil time.Time
	// DailyExhausted means the daily budget threshold is crossed; the budget
	// resets at DailyResetAt, the next midnight in Config.Location.
	DailyExhausted bool
	DailyResetAt   time.Time
	// TenantLimited means, when !OK, that the tenant's budget (WithTenant),
	// not the account's headroom, is what holds the request back for Wait.
	TenantLimited bool
	// Probe means, when !OK, that the cold-start probe holds the request:
	// no limit is known, Config.Probe reservations are in flight and no
	// response has been settled yet.
	Probe bool
	// ModelPaused means the account is paused for the request's model
	// alone (WithModel) until PausedUntil (zero = indefinite).
	ModelPaused bool
	// FairShare means, when !OK, that the request would have taken a
	// scheduled turn while another tenant with pending work is behind its
	// weighted share (see FairSlack): ask again after Wait.
	FairShare bool
}

// ReserveOption varies one Reserve call.
type ReserveOption func(*reserveOptions)

type reserveOptions struct {
	tenant   string
	model    string
	schedule time.Duration // > 0: at most this scheduled wait (below Config.Schedule)
}

// WithTenant names the producer inside the account that the request is for.
// If the tenant has a budget (SetTenantBudget), Reserve holds the request to
// it as well as to the account's limits. Whatever their budgets, tenants
// with pending work share the account's headroom by weight when it is
// short (see FairSlack); requests without a tenant count as one tenant "".
func WithTenant(tenant string) ReserveOption {
	return func(o *reserveOptions) { o.tenant = tenant }
}

// WithModel names the request's model: an account paused for that model
// alone (pausegate.Gate.PauseModel, after a model_not_found in a pool)
// refuses it (Decision.ModelPaused).
func WithModel(model string) ReserveOption {
	return func(o *reserveOptions) { o.model = model }
}

// WithScheduleLimit admits the request on schedule only if its turn is at
// most d away, when that is sooner than Config.Schedule: a pool routes a
// request to one account because another's turn was later, and a turn
// further away than that is no better.
func WithScheduleLimit(d time.Duration) ReserveOption {
	return func(o *reserveOptions) { o.schedule = max(d, time.Millisecond) }
}
