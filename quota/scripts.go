package quota

import (
	"embed"
	"strings"

	"github.com/redis/go-redis/v9"
)

// luaFiles holds the scripts and the parts they are composed of.
//
//go:embed lua/*.lua lua/reserve/*.lua lua/settle/*.lua
var luaFiles embed.FS

// compose returns the script made of the named files of lua/ (without
// ".lua"), in order: shared helpers and parts first, the script that runs
// them last. Each file documents its own functions; the last one has the
// script's KEYS, ARGV and reply. Composed once at init, the parts run as
// one script, in one round trip.
func compose(names ...string) *redis.Script {
	var b strings.Builder
	for _, n := range names {
		src, err := luaFiles.ReadFile("lua/" + n + ".lua")
		if err != nil {
			panic("quota: " + err.Error()) // a file the build embeds
		}
		b.Write(src)
		b.WriteByte('\n')
	}
	return redis.NewScript(b.String())
}

// reserveParts are the parts of reserve.lua, in the order it runs them.
var reserveParts = []string{
	"now", "bucket", "calib",
	"reserve/codes", "reserve/pause", "reserve/daily", "reserve/buckets", "reserve/tenant", "reserve/fair",
	"reserve",
}

// settleParts are the parts of settle.lua, in the order it runs them.
var settleParts = []string{
	"now", "bucket", "calib",
	"settle/limits", "settle/debit", "settle/calibrate", "settle/sync",
	"settle",
}

var (
	reserveScript     = compose(reserveParts...)
	settleScript      = compose(settleParts...)
	estimateScript    = compose("calib", "estimate")
	snapshotScript    = compose("bucket", "snapshot")
	throttleScript    = compose("throttle")
	slowdownScript    = compose("now", "bucket", "slowdown")
	tenantSetScript   = compose("tenant_set")
	tenantStateScript = compose("bucket", "tenant_state")
	fairStateScript   = compose("fair_state")
)
