package config

// MaxListConcurrency bounds listConcurrency: more ranges than this buy no
// speed from any store and only multiply the requests a throttling store
// refuses.
const MaxListConcurrency = 64

// Watching reports whether a local source watches its directory (the
// default) rather than relying on scans alone.
func (s *Source) Watching() bool {
	return s.Provider == "local" && (s.Watch == nil || *s.Watch)
}

// validateScale checks watch and listConcurrency.
func (s *Source) validateScale(f string, bad func(field, format string, args ...any)) {
	if s.Watch != nil && s.Provider != "local" {
		bad(f+".watch", "applies to provider local, not %q (other stores notify through notifications)", s.Provider)
	}
	if s.ListConcurrency < 0 || s.ListConcurrency > MaxListConcurrency {
		bad(f+".listConcurrency", "%d is not from 0 (automatic) to %d", s.ListConcurrency, MaxListConcurrency)
	}
	if s.ListConcurrency > 1 && s.Provider != "s3" && s.Provider != "gcs" {
		bad(f+".listConcurrency", "applies to providers s3 and gcs, not %q (it lists in one sequence)", s.Provider)
	}
}
