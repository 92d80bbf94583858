package providers

import (
	"fmt"
	"strings"
)

// Compare orders a and b as the provider lists them: negative when a comes
// first, zero when equal, positive otherwise.
func (o Order) Compare(a, b string) int {
	if o == UTF16Order {
		return strings.Compare(o.SortKey(a), o.SortKey(b))
	}
	return strings.Compare(a, b)
}

// SortKey maps a key to a string whose byte order equals o's order on keys.
// The mapping is reversible with FromSortKey and keeps the length.
//
// For UTF16Order it relies on a property of UTF-8: U+E000..U+FFFF are the only
// characters UTF-16 sorts after the supplementary planes, and their encodings
// are exactly those led by 0xEE and 0xEF. Moving those lead bytes to 0xF5 and
// 0xF6 — bytes that never occur in UTF-8 — puts them after the 4-byte
// sequences (0xF0..0xF4) and leaves every other comparison as it was.
func (o Order) SortKey(key string) string {
	if o != UTF16Order || !hasLead(key, 0xEE, 0xEF) {
		return key
	}
	b := []byte(key)
	for i, c := range b {
		switch c {
		case 0xEE:
			b[i] = 0xF5
		case 0xEF:
			b[i] = 0xF6
		}
	}
	return string(b)
}

// FromSortKey inverts SortKey.
func (o Order) FromSortKey(sk string) string {
	if o != UTF16Order || !hasLead(sk, 0xF5, 0xF6) {
		return sk
	}
	b := []byte(sk)
	for i, c := range b {
		switch c {
		case 0xF5:
			b[i] = 0xEE
		case 0xF6:
			b[i] = 0xEF
		}
	}
	return string(b)
}

func hasLead(s string, x, y byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == x || s[i] == y {
			return true
		}
	}
	return false
}

// ParseOrder is the inverse of Order.String, for an order stored as text.
func ParseOrder(s string) (Order, error) {
	for _, o := range []Order{ByteOrder, UTF16Order} {
		if o.String() == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("unknown key order %q", s)
}
