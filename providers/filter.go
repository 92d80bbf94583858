package providers

import (
	"fmt"
	"path"
	"strings"
)

// Filter decides which keys belong to a source: those below Prefix that match
// an Include glob (all, when there are none) and no Exclude glob. Globs apply
// to the key relative to the prefix.
//
// A glob without a slash matches the last path segment at any depth, so
// "*.jpg" matches "a/b/c.jpg". A glob with a slash matches the whole relative
// key segment by segment, and "**" stands for any number of segments:
// "thumbs/**" or "**/raw/*.png".
type Filter struct {
	Prefix  string
	Include []string
	Exclude []string
}

// CheckGlob reports whether g is a well-formed glob.
func CheckGlob(g string) error {
	if g == "" {
		return fmt.Errorf("empty glob")
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("glob %q: %w", g, err)
		}
	}
	return nil
}

// Match reports whether key belongs to the source.
func (f *Filter) Match(key string) bool {
	if !strings.HasPrefix(key, f.Prefix) {
		return false
	}
	rel := key[len(f.Prefix):]
	if rel == "" {
		return false
	}
	if len(f.Include) > 0 && !matchAny(f.Include, rel) {
		return false
	}
	return !matchAny(f.Exclude, rel)
}

// All reports whether the filter passes every key below its prefix, which
// lets a scan skip matching.
func (f *Filter) All() bool { return len(f.Include) == 0 && len(f.Exclude) == 0 }

func matchAny(globs []string, rel string) bool {
	for _, g := range globs {
		if matchGlob(g, rel) {
			return true
		}
	}
	return false
}

func matchGlob(g, rel string) bool {
	if !strings.Contains(g, "/") {
		base := rel
		if i := strings.LastIndexByte(rel, '/'); i >= 0 {
			base = rel[i+1:]
		}
		ok, _ := path.Match(g, base)
		return ok
	}
	return matchSegs(strings.Split(g, "/"), strings.Split(rel, "/"))
}

func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if matchSegs(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}
