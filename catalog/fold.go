package catalog

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fold maps s to a canonical case under Unicode simple case folding: every
// rune becomes one fixed member of its folding orbit (the smallest, or the
// lower-case letter for the orbits of ASCII letters, so that K and the
// Kelvin sign fold to the same "k" the ASCII fast paths produce). Two
// strings equal under simple folding fold to the same string, and the
// result is valid UTF-8 (an invalid byte becomes U+FFFD), so it never holds
// the bytes 0xFE or 0xFF the search blocks use as separators.
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

func foldRune(r rune) rune {
	m := r
	if r >= utf8.RuneSelf {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
	}
	if 'A' <= m && m <= 'Z' {
		return m + 'a' - 'A'
	}
	return m
}

// ContainsFold reports whether s contains the folded q under simple
// folding. ASCII keys are compared in place, without allocating: this runs
// for every key of a source on each filtered query without search blocks.
func ContainsFold(s, q string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return strings.Contains(Fold(s), q)
		}
	}
	n := len(q)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != q[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}
