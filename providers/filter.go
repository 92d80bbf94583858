package providers

import (
	"fmt"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Filter decides which keys belong to a source: those below Prefix that match
// an Include glob (all, when there are none) and no Exclude glob. Globs apply
// to the key relative to the prefix.
//
// A glob without a slash matches the last path segment at any depth, so
// "*.jpg" matches "a/b/c.jpg". A glob with a slash matches the whole relative
// key segment by segment, and "**" stands for any number of segments:
// "thumbs/**" or "**/raw/*.png". Braces give alternatives: "*.{jpg,png}".
// The syntax is github.com/bmatcuk/doublestar/v4's.
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
	// doublestar.Match validates only as far as it reads the pattern, so a
	// bad tail could pass a match that fails early; ValidatePattern reads
	// it all.
	if !doublestar.ValidatePattern(g) {
		return fmt.Errorf("glob %q: %w (%s)", g, doublestar.ErrBadPattern, globHint(g))
	}
	return nil
}

// globHint guesses what is wrong with a pattern doublestar rejected, since
// its error says only "syntax error in pattern".
func globHint(g string) string {
	switch {
	case strings.HasSuffix(g, `\`) && !strings.HasSuffix(g, `\\`):
		return `a trailing "\" escapes nothing`
	case strings.Count(g, "[") > strings.Count(g, "]"):
		return `a "[" without its "]"`
	case strings.Count(g, "{") > strings.Count(g, "}"):
		return `a "{" without its "}"`
	default:
		return `check the "[...]" and "{a,b}" groups`
	}
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
	if strings.IndexByte(g, '/') < 0 {
		if i := strings.LastIndexByte(rel, '/'); i >= 0 {
			rel = rel[i+1:]
		}
	}
	// A malformed glob matches nothing; config validation reports it.
	ok, _ := doublestar.Match(g, rel)
	return ok
}
