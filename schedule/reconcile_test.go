package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/schedule"
)

// listing is a provider over a fixed list of pages, for the merge logic
// alone; the adapters are tested against real servers elsewhere.
type listing struct {
	pages [][]string
	fail  int // page index whose listing fails; -1 for none
	order providers.Order
}

func (l *listing) ListPage(_ context.Context, _, token string) (providers.Page, error) {
	i := 0
	if token != "" {
		i, _ = strconv.Atoi(token)
	}
	if i == l.fail {
		return providers.Page{}, providers.Classify(providers.ErrTransient, errors.New("injected failure"))
	}
	pg := providers.Page{}
	for _, k := range l.pages[i] {
		pg.Objects = append(pg.Objects, providers.Object{Key: k, Size: 1, ETag: "e-" + k})
	}
	if i+1 < len(l.pages) {
		pg.Next = strconv.Itoa(i + 1)
	}
	return pg, nil
}
func (l *listing) Stat(context.Context, string) (providers.Object, error) {
	return providers.Object{}, providers.ErrNotFound
}
func (l *listing) Order() providers.Order { return l.order }
func (l *listing) Close() error           { return nil }

func openSource(t *testing.T, order providers.Order) *catalog.Source {
	t.Helper()
	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.Source("s", order)
}

func keys(t *testing.T, cs *catalog.Source) []string {
	t.Helper()
	var out []string
	if err := cs.Range(context.Background(), "", func(e catalog.Entry) error {
		out = append(out, e.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func reconcile(t *testing.T, cs *catalog.Source, l *listing, f providers.Filter) (schedule.Result, error) {
	t.Helper()
	return schedule.Reconcile(context.Background(), schedule.Target{ID: "s", Provider: l, Filter: f, Catalog: cs}, schedule.Options{BatchSize: 2})
}

func TestReconcileDiff(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	l := &listing{fail: -1, pages: [][]string{{"a", "b", "c"}, {"d", "e"}}}
	res, err := reconcile(t, cs, l, providers.Filter{})
	if err != nil || res.Added != 5 {
		t.Fatalf("first: %+v, %v", res, err)
	}
	// Deleted at the start, the middle (a page boundary) and the end; added between.
	l.pages = [][]string{{"b", "bb"}, {"c", "e"}, {}}
	res, err = reconcile(t, cs, l, providers.Filter{})
	if err != nil || res.Added != 1 || res.Deleted != 2 || res.Modified != 0 {
		t.Fatalf("second: %+v, %v", res, err)
	}
	if got := fmt.Sprint(keys(t, cs)); got != "[b bb c e]" {
		t.Fatalf("catalog %s", got)
	}
	// An empty but successful listing deletes everything.
	l.pages = [][]string{{}}
	if res, err = reconcile(t, cs, l, providers.Filter{}); err != nil || res.Deleted != 4 {
		t.Fatalf("empty: %+v, %v", res, err)
	}
}

func TestReconcileFilterChangeDeletesWhatNoLongerMatches(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	l := &listing{fail: -1, pages: [][]string{{"a.jpg", "b.png", "c.txt"}}}
	if res, err := reconcile(t, cs, l, providers.Filter{}); err != nil || res.Added != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	res, err := reconcile(t, cs, l, providers.Filter{Include: []string{"*.jpg", "*.png"}})
	if err != nil || res.Deleted != 1 || res.Matched != 2 {
		t.Fatalf("%+v, %v", res, err)
	}
}

func TestReconcileFailedListingDeletesNothing(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	l := &listing{fail: -1, pages: [][]string{{"a", "b"}, {"c", "d"}, {"e"}}}
	if _, err := reconcile(t, cs, l, providers.Filter{}); err != nil {
		t.Fatal(err)
	}
	l.pages = [][]string{{"a2"}, {"c"}, {}} // a, b, d, e gone; a2 new
	l.fail = 1
	res, err := reconcile(t, cs, l, providers.Filter{})
	if err == nil {
		t.Fatal("no error from a failed listing")
	}
	if res.Deleted != 0 || res.Added != 1 {
		t.Fatalf("failed listing applied %+v; want only the addition it saw", res)
	}
	if got := fmt.Sprint(keys(t, cs)); got != "[a a2 b c d e]" {
		t.Fatalf("catalog %s", got)
	}
}

func TestReconcileRejectsOutOfOrderListing(t *testing.T) {
	for _, pages := range [][][]string{
		{{"a", "c", "b"}},
		{{"a", "b"}, {"b", "c"}}, // a repeated key across pages
		{{"a", "d"}, {"c"}},
	} {
		cs := openSource(t, providers.ByteOrder)
		if _, err := reconcile(t, cs, &listing{fail: -1, pages: [][]string{{"a", "b", "c", "d"}}}, providers.Filter{}); err != nil {
			t.Fatal(err)
		}
		_, err := reconcile(t, cs, &listing{fail: -1, pages: pages}, providers.Filter{})
		var oe *providers.OrderError
		if !errors.As(err, &oe) {
			t.Fatalf("pages %v: err %v, want an OrderError", pages, err)
		}
		if got := fmt.Sprint(keys(t, cs)); got != "[a b c d]" {
			t.Fatalf("pages %v: catalog %s after an out-of-order listing", pages, got)
		}
	}
}

func TestReconcileUTF16Order(t *testing.T) {
	// In UTF-16 order U+1F600 sorts before U+FF21; in UTF-8 after.
	cs := openSource(t, providers.UTF16Order)
	l := &listing{fail: -1, order: providers.UTF16Order, pages: [][]string{{"e/\U0001F600", "e/\uFF21", "f"}}}
	if res, err := reconcile(t, cs, l, providers.Filter{}); err != nil || res.Added != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	l.pages = [][]string{{"e/\U0001F600", "f"}}
	res, err := reconcile(t, cs, l, providers.Filter{})
	if err != nil || res.Deleted != 1 || res.Added != 0 {
		t.Fatalf("%+v, %v", res, err)
	}
	// The same listing under byte order is out of order.
	_, err = reconcile(t, openSource(t, providers.ByteOrder), &listing{fail: -1, pages: [][]string{{"e/\U0001F600", "e/\uFF21"}}}, providers.Filter{})
	var oe *providers.OrderError
	if !errors.As(err, &oe) {
		t.Fatalf("byte order: %v, want an OrderError", err)
	}
}

func TestReconcileRescanWritesNothing(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	var page []string
	for i := range 100 {
		page = append(page, fmt.Sprintf("k%03d", i))
	}
	l := &listing{fail: -1, pages: [][]string{page[:40], page[40:]}}
	if _, err := reconcile(t, cs, l, providers.Filter{}); err != nil {
		t.Fatal(err)
	}
	before, err := cs.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := reconcile(t, cs, l, providers.Filter{})
	after, serr := cs.Stats(context.Background())
	if serr != nil {
		t.Fatal(serr)
	}
	if err != nil || res.Added+res.Modified+res.Deleted != 0 || before != after {
		t.Fatalf("rescan: %+v, %v; stats %+v -> %+v", res, err, before, after)
	}
}
