package catalogtest

import (
	"context"
	"errors"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// testKeyOrder: a source's key order is recorded at its first open and a
// later open in another order is refused; reading it writes nothing.
func testKeyOrder(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if _, ok, err := c.RecordedOrder(ctx, "s"); err != nil || ok {
		t.Fatalf("before any open: recorded %v, %v", ok, err)
	}
	s := c.Source("s", providers.UTF16Order)
	if err := s.CheckOrder(ctx); err != nil {
		t.Fatalf("first open: %v", err)
	}
	if err := s.CheckOrder(ctx); err != nil {
		t.Fatalf("second open, same order: %v", err)
	}
	if o, ok, err := c.RecordedOrder(ctx, "s"); err != nil || !ok || o != providers.UTF16Order {
		t.Fatalf("recorded %v %v %v, want %v", o, ok, err, providers.UTF16Order)
	}
	err := c.Source("s", providers.ByteOrder).CheckOrder(ctx)
	if !errors.Is(err, catalog.ErrOrderMismatch) {
		t.Fatalf("open in another order: %v, want ErrOrderMismatch", err)
	}
	if err := c.Source("other", providers.ByteOrder).CheckOrder(ctx); err != nil {
		t.Fatalf("another source, another order: %v", err)
	}
}

// testRangeAfter: a keyset cursor's page starts strictly after its key, in
// the source's order (UTF-16 here, where it differs from byte order), with
// or without a filter.
func testRangeAfter(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.UTF16Order)
	all := []string{"a", "b\uffff", "b\U0001F600", "c", "d"} // UTF-16: U+FFFF after the surrogate pair
	var muts []catalog.Mutation
	for i, k := range all {
		muts = append(muts, scan(obj(k, i)))
	}
	commit(t, s, muts...)
	page := func(after string, match func([]byte) bool) []string {
		t.Helper()
		var got []string
		view(t, s, func(sn *catalog.Snapshot) error {
			var err error
			got, err = collect(func(fn func(catalog.Entry) error) error { return sn.RangeAfter(context.Background(), after, match, fn) })
			return err
		})
		return got
	}
	want(t, "after \"\"", page("", nil), []string{"a", "b\U0001F600", "b\uffff", "c", "d"})
	want(t, "after the pair", page("b\U0001F600", nil), []string{"b\uffff", "c", "d"})
	want(t, "after a missing key", page("bb", nil), []string{"b\U0001F600", "b\uffff", "c", "d"})
	want(t, "after the last", page("d", nil), nil)
	notC := func(k []byte) bool { return string(k) != "c" }
	want(t, "after a, filtered", page("a", notC), []string{"b\U0001F600", "b\uffff", "d"})
}
