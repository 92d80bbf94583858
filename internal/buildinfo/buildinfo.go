// Package buildinfo reports what the running binary was built from, for
// `syncer version`, the worker's /status and its build_info metric.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Info is what the Go toolchain stamped into the binary.
type Info struct {
	// Version is the module version ("" when unknown, e.g. "(devel)").
	Version string
	// Revision is the full VCS revision ("" when unknown).
	Revision string
	// Modified says the work tree had uncommitted changes.
	Modified  bool
	GoVersion string
}

// Read returns the build information of the running binary.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{GoVersion: bi.GoVersion}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		info.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// ShortRevision is the first 7 characters of the revision, with "-dirty"
// when the tree was modified; "" when the revision is unknown.
func (i Info) ShortRevision() string {
	r := i.Revision
	if r == "" {
		return ""
	}
	if len(r) > 7 {
		r = r[:7]
	}
	if i.Modified {
		r += "-dirty"
	}
	return r
}

// VersionOrDev is the module version, or "dev" for a build from a work
// tree: what /status and the build_info metric show.
func (i Info) VersionOrDev() string {
	if i.Version == "" {
		return "dev"
	}
	return i.Version
}

// String is the one-line form `syncer version` prints after "syncer ":
// "v0.0.0-… (revision 1a2b3c4, go1.26.8)", or "dev" when nothing is known.
func (i Info) String() string {
	v := i.VersionOrDev()
	rev := i.ShortRevision()
	switch {
	case rev != "" && i.GoVersion != "":
		return fmt.Sprintf("%s (revision %s, %s)", v, rev, i.GoVersion)
	case rev != "":
		return fmt.Sprintf("%s (revision %s)", v, rev)
	case i.GoVersion != "" && i.Version != "":
		return fmt.Sprintf("%s (%s)", v, i.GoVersion)
	}
	return v
}
