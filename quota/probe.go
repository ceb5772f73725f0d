package quota

// ProbeDefault is Config.Probe's default.
const ProbeDefault = 1
