package providers

import (
	"math/big"
	"slices"
	"strings"
)

// The split planner reads keys as numbers to cut the key space ahead into
// ranges of a given number of pages. A key is read, from the end of the
// longest prefix every key seen so far shares, as spanWidth digits of mixed
// radix: at each position the alphabet is the classes of bytes seen there
// (all digits if a digit was, all lower-case letters if one was, likewise
// upper case) plus any other byte seen there, the end of a key ranking
// lowest. Reading raw bytes instead would make a range over decimal ids up
// to 25 times its intended size (ten digits use ten of 256 byte values, so
// an interpolated boundary lands far past its digit's keys); one alphabet
// for all positions fills ranges over dates with the letters of the file
// names; only the bytes seen at a position could not be extrapolated past
// the first page's.
const (
	spanWidth = 64
	maxKeyLen = 1024 // S3's and GCS's limit; bytes past it are not modelled
)

type keyModel struct {
	prefix  string // the listing's
	lcp     string // shared by every key seen (and by prefix)
	started bool
	seen    [maxKeyLen][256]bool // bytes seen at each position after the listing's prefix
	// first and last keys of the latest pages of two keys or more: the
	// median of their spans is the density estimate (one page straddling a
	// gap in the alphabet, "0999" to "1000", looks far wider than it is).
	spans [][2]string
	// ranges: the latest ranges listed to their end, with the keys each
	// held; pageLen: the longest page seen. Ranges tile the key space, so
	// their spans over their keys are the density with the dead space
	// between directories in it, which pages starting at a directory's
	// first key do not show.
	ranges  []listedRange
	pageLen int
}

type listedRange struct {
	lo, hi string
	keys   int
}

const recentSpans = 8

// page records the span of a page from first to last key.
func (m *keyModel) page(first, last string, n int) {
	m.pageLen = max(m.pageLen, n)
	if len(m.spans) == recentSpans {
		m.spans = m.spans[1:]
	}
	m.spans = append(m.spans, [2]string{first, last})
}

// step is the median span of the recent pages, at least 1.
func (m *keyModel) step() *big.Int { return m.stepWith(m.alphabets()) }

func (m *keyModel) stepWith(as [][]byte) *big.Int {
	step := m.pageStep(as)
	if r := m.rangeStep(as); r != nil && r.Cmp(step) > 0 {
		return r
	}
	return step
}

// listed records a range (lo, hi] listed to its end, holding keys keys.
func (m *keyModel) listed(lo, hi string, keys int) {
	if len(m.ranges) == recentSpans {
		m.ranges = m.ranges[1:]
	}
	m.ranges = append(m.ranges, listedRange{lo, hi, keys})
}

// rangeStep is a page's span at the median density of the latest ranges
// listed that held keys, nil before any. The median: where directories span
// many pages, the few ranges across a directory's end (and its dead space)
// do not count; where most ranges cross one, they are the density.
func (m *keyModel) rangeStep(as [][]byte) *big.Int {
	var ds []*big.Int
	for _, r := range m.ranges {
		d := new(big.Int).Sub(m.numWith(as, r.hi), m.numWith(as, r.lo))
		if r.keys > 0 && d.Sign() > 0 {
			ds = append(ds, d.Div(d.Mul(d, big.NewInt(int64(m.pageLen))), big.NewInt(int64(r.keys))))
		}
	}
	if len(ds) == 0 || m.pageLen == 0 {
		return nil
	}
	slices.SortFunc(ds, (*big.Int).Cmp)
	return ds[len(ds)/2]
}

// pageStep is the median span of the recent pages, at least 1.
func (m *keyModel) pageStep(as [][]byte) *big.Int {
	var ds []*big.Int
	for _, s := range m.spans {
		if d := new(big.Int).Sub(m.numWith(as, s[1]), m.numWith(as, s[0])); d.Sign() > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return big.NewInt(1)
	}
	slices.SortFunc(ds, (*big.Int).Cmp)
	return ds[len(ds)/2]
}

// learn takes in the keys of a page (or any key to be read as a number).
func (m *keyModel) learn(keys ...string) {
	for _, k := range keys {
		if !m.started {
			m.lcp, m.started = k, true
		} else if !strings.HasPrefix(k, m.lcp) {
			m.lcp = commonPrefix(m.lcp, k)
		}
		for i := len(m.prefix); i < min(len(k), maxKeyLen); i++ {
			m.seen[i][k[i]] = true
		}
	}
}

func commonPrefix(a, b string) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return a[:i]
		}
	}
	return a[:n]
}

// alphabet is the bytes position pos may hold, in order (see above).
func (m *keyModel) alphabet(pos int) []byte {
	if pos >= maxKeyLen {
		return nil
	}
	seen := &m.seen[pos]
	var class [3]bool
	for b := range 256 {
		if seen[b] {
			switch {
			case '0' <= b && b <= '9':
				class[0] = true
			case 'a' <= b && b <= 'z':
				class[1] = true
			case 'A' <= b && b <= 'Z':
				class[2] = true
			case b < 0x20 || b >= 0x7f:
				// Not printable ASCII: binary or UTF-8, and any byte
				// may follow at this position.
				a := make([]byte, 256)
				for i := range a {
					a[i] = byte(i)
				}
				return a
			}
		}
	}
	var a []byte
	for b := range 256 {
		in := seen[b] || class[0] && '0' <= b && b <= '9' || class[1] && 'a' <= b && b <= 'z' ||
			class[2] && 'A' <= b && b <= 'Z'
		if in {
			a = append(a, byte(b))
		}
	}
	return a
}

func (m *keyModel) alphabets() [][]byte {
	as := make([][]byte, spanWidth)
	for i := range as {
		as[i] = m.alphabet(len(m.lcp) + i)
	}
	return as
}

func (m *keyModel) num(key string) *big.Int {
	return m.numWith(m.alphabets(), key)
}

func (m *keyModel) numWith(as [][]byte, key string) *big.Int {
	n := new(big.Int)
	start := len(m.lcp)
	for i, a := range as {
		n.Mul(n, big.NewInt(int64(len(a)+1)))
		if pos := start + i; pos < len(key) {
			// The rank of the byte (learnt keys' bytes are all in a).
			d, _ := slices.BinarySearch(a, key[pos])
			n.Add(n, big.NewInt(int64(d+1)))
		}
	}
	return n
}

// str is the key num reads as n, or false when n is past every such key.
func (m *keyModel) str(n *big.Int) (string, bool) { return m.strWith(m.alphabets(), n) }

func (m *keyModel) strWith(as [][]byte, n *big.Int) (string, bool) {
	digits := make([]int64, spanWidth)
	n = new(big.Int).Set(n)
	r := new(big.Int)
	for i := spanWidth - 1; i >= 0; i-- {
		n.DivMod(n, big.NewInt(int64(len(as[i])+1)), r)
		digits[i] = r.Int64()
	}
	if n.Sign() != 0 {
		return "", false
	}
	b := []byte(m.lcp)
	for i, d := range digits {
		if d == 0 {
			break
		}
		b = append(b, as[i][d-1])
	}
	return string(b), true
}

// boundary is the end of a range beginning at base that should hold about
// pages pages at the latest page's density: a string after base. ok is
// false when the range reaches past every key (it is the last).
func (m *keyModel) boundary(base string, pages int) (hi string, ok bool) {
	m.learn(base)
	step := new(big.Int).Mul(m.step(), big.NewInt(int64(pages)))
	if hi, ok = m.str(new(big.Int).Add(m.num(base), step)); !ok {
		// Past the keys' alphabet at the leading position: end the range
		// where base's leading byte ends; the next range's first page
		// shows what comes after (and widens the alphabet).
		lead := m.lcp
		if len(base) > len(lead) {
			lead = base[:len(lead)+1]
		}
		return successor(lead, len(m.prefix))
	}
	if hi > base {
		return hi, true
	}
	if hi, ok = m.str(new(big.Int).Add(m.num(base), big.NewInt(1))); ok && hi > base {
		return hi, true
	}
	return base + "\x00", true
}

// successor is the least string after every string with prefix p, when
// one exists beyond the listing's prefix (keep bytes): p with its trailing
// 0xff bytes dropped and its last byte incremented.
func successor(p string, keep int) (string, bool) {
	b := []byte(p)
	for len(b) > keep && b[len(b)-1] == 0xff {
		b = b[:len(b)-1]
	}
	if len(b) <= keep {
		return "", false
	}
	b[len(b)-1]++
	return string(b), true
}
