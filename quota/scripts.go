package quota

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/bucket.lua
var bucketLua string

//go:embed lua/reserve.lua
var reserveLua string

//go:embed lua/settle.lua
var settleLua string

//go:embed lua/snapshot.lua
var snapshotLua string

//go:embed lua/throttle.lua
var throttleLua string

//go:embed lua/slowdown.lua
var slowdownLua string

//go:embed lua/tenant_set.lua
var tenantSetLua string

//go:embed lua/tenant_state.lua
var tenantStateLua string

//go:embed lua/fair_state.lua
var fairStateLua string

//go:embed lua/calib.lua
var calibLua string

//go:embed lua/estimate.lua
var estimateLua string

var (
	reserveScript     = redis.NewScript(bucketLua + calibLua + reserveLua)
	settleScript      = redis.NewScript(bucketLua + calibLua + settleLua)
	estimateScript    = redis.NewScript(calibLua + estimateLua)
	snapshotScript    = redis.NewScript(snapshotLua)
	throttleScript    = redis.NewScript(throttleLua)
	slowdownScript    = redis.NewScript(bucketLua + slowdownLua)
	tenantSetScript   = redis.NewScript(tenantSetLua)
	tenantStateScript = redis.NewScript(tenantStateLua)
	fairStateScript   = redis.NewScript(fairStateLua)
)
