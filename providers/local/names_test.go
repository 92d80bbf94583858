package local

import (
	"testing"
	"unicode/utf8"
)

func TestKeyNameRoundTrip(t *testing.T) {
	for _, name := range []string{"a.txt", "a%b", "%FF", "bad-\xff.txt", "bad-\xfe%.txt", "\xff\xfe", "ü\xc3", "%", "x%2"} {
		key := keyOf(name)
		if !utf8.ValidString(key) {
			t.Errorf("keyOf(%q) = %q: not UTF-8", name, key)
		}
		// A valid name is its own key; "%FF" is also the encoding of "\xff",
		// which is why a real name wins over a decoding (see Stat).
		if back := nameOf(key); !utf8.ValidString(name) && back != name {
			t.Errorf("nameOf(keyOf(%q)) = %q (key %q)", name, back, key)
		}
		if utf8.ValidString(name) && key != name {
			t.Errorf("valid name %q changed to %q", name, key)
		}
	}
	// Keys that are no encoding of a non-UTF-8 name stay as they are.
	for _, key := range []string{"%ff", "%FF%", "%4", "%41", "%ZZ", "a%25b"} {
		if got := nameOf(key); got != key {
			t.Errorf("nameOf(%q) = %q", key, got)
		}
	}
}
