package quota

// ProbeDefault is Config.Probe's default.
const ProbeDefault = 1

// probeLimit is reserve.lua's probe argument: Config.Probe, 0 when off.
func (l *Limiter) probeLimit() int { return max(l.cfg.Probe, 0) }
