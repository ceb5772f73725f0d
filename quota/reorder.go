package quota

import (
	"time"
)

// ReorderWindow is how far apart two requests' send times may be and still
// reach the provider in either order; the header sync (lua/settle/sync.lua)
// treats an in-flight request sent up to this long before a response's own
// as possibly not yet seen by the provider. Send times are stamped in whole
// ms before the Redis round trip; the request then leaves after a goroutine
// wake-up (a scheduled one after the worker's 10ms ScheduleSlack) and an HTTP
// round trip whose start jitters by a few ms per process and host. Against
// the fake provider, two requests stamped 1ms apart from one process arrived
// reversed, which the old sync turned into a 429. 25ms covers the slack plus
// that jitter with room to spare, yet stays well under the gap between
// requests at the limits promptq runs at (200ms at 300 RPM, 50ms at 1200),
// so the window only matters for bursts of near-simultaneous sends.
const ReorderWindow = 25 * time.Millisecond
