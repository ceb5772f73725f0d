package pausegate

import (
	"cmp"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/clock"
)

// Defaults and limits applied by Config.WithDefaults and Config.Validate.
const (
	// ShortPauseDefault is the default Config.ShortPause. Pausing asynq queues
	// costs the end of the pause: after an unpause, idle asynq processors sleep
	// TaskCheckInterval/2 + rand(TaskCheckInterval) (0.5-1.5 s at asynq's
	// default 1 s) before they look again, and the expiry itself is noticed by
	// Tick up to CheckInterval (1 s) late. That is up to ~2.5 s of idle time
	// added after the resume time. A record-only pause ends exactly on time
	// (handlers wait on a timer), so queues are paused only for pauses longer
	// than that overhead: 3 s.
	ShortPauseDefault = 3 * time.Second
	// PauseDefault is the default Config.DefaultPause.
	PauseDefault = time.Hour
	// DefaultPauseMin and DefaultPauseMax bound Config.DefaultPause.
	DefaultPauseMin = time.Second
	DefaultPauseMax = 168 * time.Hour
	// CheckIntervalDefault is the default Config.CheckInterval.
	CheckIntervalDefault = time.Second
	// CheckIntervalMin and CheckIntervalMax bound Config.CheckInterval.
	CheckIntervalMin = 10 * time.Millisecond
	CheckIntervalMax = time.Minute
	// ShortPauseMax bounds Config.ShortPause.
	ShortPauseMax = time.Hour

	// RecordGrace is how long a finite record is kept after its until before
	// Redis expires it (PEXPIRE until-now+RecordGrace), so stale records go
	// away even when no gate is running.
	RecordGrace = 24 * time.Hour
	// ClaimLease is how long an auto-resume claim (see Tick) protects the
	// claiming gate; after it another gate may finish an abandoned resume.
	ClaimLease = 30 * time.Second
)

// QueueController pauses and unpauses asynq queues. *asynq.Inspector
// satisfies it. Errors saying the queue is already paused (PauseQueue) or not
// paused (UnpauseQueue) are treated as success by the Gate.
type QueueController interface {
	PauseQueue(queue string) error
	UnpauseQueue(queue string) error
}

// QueueStater is optionally implemented by a QueueController that can tell
// whether a queue is paused; Status uses it to report paused queues.
// *asynq.Inspector does not implement it directly (wrap GetQueueInfo).
type QueueStater interface {
	QueuePaused(queue string) (bool, error)
}

// RetryRunner is optionally implemented by a QueueController that can make
// a queue's retry tasks due now; *asynq.Inspector implements it. A manual
// Resume uses it so that tasks parked with a delay up to the pause's end run
// at once instead of idling until the time the pause would have ended.
type RetryRunner interface {
	RunAllRetryTasks(queue string) (int, error)
}

// Config configures a Gate.
type Config struct {
	// Clock tells the time written into records and compared with them.
	// Default clock.Real{}.
	Clock clock.Clock
	// Logger receives the gate's logs, tagged component=pausegate. Default:
	// the zero Logger (discards).
	Logger zerolog.Logger
	// Queues pauses the account's asynq queues during long pauses. Default nil:
	// the pause is enforced by the record only.
	Queues QueueController
	// ShortPause: pauses no longer than this are enforced by the record only;
	// the asynq queues are left running. Default ShortPauseDefault (3s); range
	// 0..ShortPauseMax.
	ShortPause time.Duration
	// DefaultPause is the length of an automatic pause whose request has no
	// resume time (quota or auth failures; PAUSE_DURATION_HOURS). Default
	// PauseDefault (1h); range DefaultPauseMin..DefaultPauseMax.
	DefaultPause time.Duration
	// CheckInterval is the period of Run's Tick, which covers missed pub/sub
	// messages and drives auto-resume. Default CheckIntervalDefault (1s);
	// range CheckIntervalMin..CheckIntervalMax.
	CheckInterval time.Duration
	// SetBy is the identity written into records as set_by. Default
	// "hostname:pid".
	SetBy string
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	c.ShortPause = cmp.Or(c.ShortPause, ShortPauseDefault)
	c.DefaultPause = cmp.Or(c.DefaultPause, PauseDefault)
	c.CheckInterval = cmp.Or(c.CheckInterval, CheckIntervalDefault)
	if c.SetBy == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "unknown"
		}
		c.SetBy = host + ":" + strconv.Itoa(os.Getpid())
	}
	return c
}

// Validate reports the first field of c that is out of range. Call it on
// the result of WithDefaults.
func (c Config) Validate() error {
	switch {
	case c.Clock == nil:
		return fmt.Errorf("pausegate: Config.Clock is nil")
	case c.ShortPause < 0 || c.ShortPause > ShortPauseMax:
		return fmt.Errorf("pausegate: Config.ShortPause %v out of range 0..%v", c.ShortPause, ShortPauseMax)
	case c.DefaultPause < DefaultPauseMin || c.DefaultPause > DefaultPauseMax:
		return fmt.Errorf("pausegate: Config.DefaultPause %v out of range %v..%v", c.DefaultPause, DefaultPauseMin, DefaultPauseMax)
	case c.CheckInterval < CheckIntervalMin || c.CheckInterval > CheckIntervalMax:
		return fmt.Errorf("pausegate: Config.CheckInterval %v out of range %v..%v", c.CheckInterval, CheckIntervalMin, CheckIntervalMax)
	case c.SetBy == "":
		return fmt.Errorf("pausegate: Config.SetBy is empty")
	}
	return nil
}
