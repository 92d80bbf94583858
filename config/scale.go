package config

import (
	"fmt"

	"github.com/imgly/syncer/providers"
)

// MaxListConcurrency bounds listConcurrency: more ranges than this buy no
// speed from any store and only multiply the requests a throttling store
// refuses.
const MaxListConcurrency = 64

// Watching reports whether a source of kind d watches its store (the
// default for a kind that can) rather than relying on scans alone.
func (s *Source) Watching(d providers.Descriptor) bool {
	return d.Watches && (s.Watch == nil || *s.Watch)
}

// validateScale checks listConcurrency's range; checkRanges, with the
// kinds at hand, whether the source's kind lists ranges at all.
func (s *Source) validateScale(f string, bad func(field, format string, args ...any)) {
	if s.ListConcurrency < 0 || s.ListConcurrency > MaxListConcurrency {
		bad(f+".listConcurrency", "%d is not from 0 (automatic) to %d", s.ListConcurrency, MaxListConcurrency)
	}
}

func (s *Source) checkRanges(f string, d providers.Descriptor, kinds *providers.Registry) []error {
	if s.ListConcurrency <= 1 || d.ListsRanges {
		return nil
	}
	which := kinds.ListWhere("and", func(k providers.Descriptor) bool { return k.ListsRanges })
	return []error{fmt.Errorf("%s.listConcurrency: applies to providers %s, not %q (it lists in one sequence)", f, which, s.Provider)}
}
