package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterBuild registers tswgate_build_info, always 1, labelled with
// version, revision and the Go version; an empty version or revision is
// read from the binary's build information.
func RegisterBuild(reg prometheus.Registerer, version, revision string) error {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tswgate_build_info",
		Help: "Always 1; labels name the running build.",
	}, []string{"version", "revision", "goversion"})
	v, r := buildInfo()
	if version == "" {
		version = v
	}
	if revision == "" {
		revision = r
	}
	build.WithLabelValues(version, revision, runtime.Version()).Set(1)
	return register(reg, build)
}

// buildInfo returns the module version and VCS revision of the binary, or
// "unknown".
func buildInfo() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := bi.Main.Version; v != "" {
		version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return
}
