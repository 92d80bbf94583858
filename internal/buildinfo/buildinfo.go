// Package buildinfo reads the version and VCS revision the Go toolchain
// stamped into the binary.
package buildinfo

import "runtime/debug"

// Info describes the running binary.
type Info struct {
	Version   string // module version, "(devel)" for a build from a work tree
	Revision  string // VCS revision, "" when unknown
	Modified  bool   // the work tree had uncommitted changes
	GoVersion string
}

// Read returns the build information of the running binary.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	info := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Version == "" {
		info.Version = "(devel)"
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
