package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

var buildInfoDesc = prometheus.NewDesc("promptq_build_info",
	"Always 1: the promptq binary's module version, VCS revision and Go version as labels.",
	[]string{"version", "revision", "goversion"}, nil)

// BuildInfo exports promptq_build_info, which is there from the first
// scrape on, whatever Redis holds.
type BuildInfo struct {
	version, revision string
}

var _ prometheus.Collector = (*BuildInfo)(nil)

// NewBuildInfo reads the binary's build information (module version,
// vcs.revision; "unknown" when the binary carries none).
func NewBuildInfo() *BuildInfo {
	b := &BuildInfo{version: "unknown", revision: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			b.version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				b.revision = s.Value
			}
		}
	}
	return b
}

// Describe implements prometheus.Collector.
func (b *BuildInfo) Describe(ch chan<- *prometheus.Desc) { ch <- buildInfoDesc }

// Collect implements prometheus.Collector.
func (b *BuildInfo) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(buildInfoDesc, prometheus.GaugeValue, 1, b.version, b.revision, runtime.Version())
}
