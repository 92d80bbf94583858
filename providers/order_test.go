package providers

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// utf16Compare is the reference UTF16Order is checked against: encode both
// keys to UTF-16 and compare the code units, as Azure Blob and Azurite do.
func utf16Compare(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// edgeRunes are the boundaries where UTF-8 and UTF-16 encodings change
// length or where the two orders part.
var edgeRunes = []rune{
	0x00, 0x2F, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, // below the surrogate range
	0xE000, 0xE001, 0xEFFF, 0xF000, 0xF8FF, 0xFB01, 0xFEFF, 0xFF21, 0xFFFD, 0xFFFE, 0xFFFF, // after the surrogates
	0x10000, 0x1F600, 0x1FFFF, 0xE0000, 0x10FFFF, // supplementary planes
}

// randRune draws from ranges weighted towards the ones that matter for the
// order: supplementary planes and U+E000..U+FFFF.
func randRune(r *rand.Rand) rune {
	switch r.IntN(6) {
	case 0:
		return rune(' ' + r.IntN(95)) // printable ASCII
	case 1:
		return rune(0x80 + r.IntN(0xD800-0x80)) // 2- and 3-byte below the surrogates
	case 2:
		return rune(0xE000 + r.IntN(0x10000-0xE000)) // after the surrogates
	case 3:
		return rune(0x10000 + r.IntN(0x110000-0x10000)) // supplementary
	case 4:
		return edgeRunes[r.IntN(len(edgeRunes))]
	default:
		return rune('a' + r.IntN(3)) // shared prefixes
	}
}

func randKey(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(8); n > 0; n-- {
		b.WriteRune(randRune(r))
	}
	return b.String()
}

func TestUTF16OrderMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 0, 3000)
	for _, e := range edgeRunes {
		keys = append(keys, string(e), "k/"+string(e), "k/"+string(e)+"x")
	}
	for len(keys) < cap(keys) {
		keys = append(keys, randKey(r))
	}
	o := UTF16Order
	for i, a := range keys {
		if !utf8.ValidString(a) {
			t.Fatalf("generator made invalid UTF-8 %q", a)
		}
		sk := o.SortKey(a)
		if len(sk) != len(a) {
			t.Errorf("SortKey(%q) changes the length: %d -> %d", a, len(a), len(sk))
		}
		if back := o.FromSortKey(sk); back != a {
			t.Errorf("FromSortKey(SortKey(%q)) = %q", a, back)
		}
		// Each key against a handful of others, including near neighbours
		// that share a prefix.
		for _, b := range []string{keys[(i+1)%len(keys)], keys[r.IntN(len(keys))], a + "\U0001F600", a + "\uFF21", a} {
			want := sign(utf16Compare(a, b))
			if got := sign(o.Compare(a, b)); got != want {
				t.Errorf("Compare(%q, %q) = %d, UTF-16 reference says %d", a, b, got, want)
			}
			if got := sign(strings.Compare(o.SortKey(a), o.SortKey(b))); got != want {
				t.Errorf("SortKey byte order of %q, %q = %d, UTF-16 reference says %d", a, b, got, want)
			}
		}
	}

	// Sorting whole listings both ways gives the same sequence.
	byRef := slices.Clone(keys)
	slices.SortStableFunc(byRef, utf16Compare)
	bySortKey := slices.Clone(keys)
	slices.SortStableFunc(bySortKey, func(a, b string) int { return strings.Compare(o.SortKey(a), o.SortKey(b)) })
	if !slices.Equal(byRef, bySortKey) {
		t.Fatal("sorting by SortKey bytes differs from sorting by UTF-16 code units")
	}
}

// The case the provider suite relies on: the emoji sorts before the
// fullwidth letter in UTF-16 and after it in UTF-8.
func TestUTF16OrderExample(t *testing.T) {
	emoji, fullwidth := "emoji/😀.png", "emoji/\uFF21.png"
	if UTF16Order.Compare(emoji, fullwidth) >= 0 {
		t.Error("UTF16Order puts U+FF21 before U+1F600")
	}
	if ByteOrder.Compare(emoji, fullwidth) <= 0 {
		t.Error("ByteOrder puts U+1F600 before U+FF21")
	}
}

func TestByteOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	o := ByteOrder
	for range 2000 {
		a, b := randKey(r), randKey(r)
		if r.IntN(4) == 0 {
			b = a + b
		}
		if got, want := sign(o.Compare(a, b)), strings.Compare(a, b); got != want {
			t.Errorf("ByteOrder.Compare(%q, %q) = %d, want %d", a, b, got, want)
		}
		if o.SortKey(a) != a || o.FromSortKey(a) != a {
			t.Errorf("ByteOrder sort key of %q is not the key itself", a)
		}
	}
	// Byte order and UTF-16 order agree except across the two ranges.
	if ByteOrder.Compare("a\u00e9", "a\u0800") != UTF16Order.Compare("a\u00e9", "a\u0800") {
		t.Error("orders disagree below U+E000")
	}
}
