package schedule_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// An indexed source's first listing leaves the asset indexes to a build at
// its end: while it runs, readers see the source unindexed; after it, the
// indexes hold every object, and a rescan builds nothing.
func TestReconcileBuildsDeferredIndexes(t *testing.T) {
	ctx := context.Background()
	cs := openSource(t, providers.ByteOrder).Indexed(true)
	var page []string
	for i := range 300 {
		page = append(page, fmt.Sprintf("d%d/k%03d", i/100, i))
	}
	l := &listing{fail: 2, pages: [][]string{page[:100], page[100:200], page[200:]}}
	if _, err := reconcile(t, cs, l, providers.Filter{}); err == nil {
		t.Fatal("a listing that fails on its last page succeeded")
	}
	indexed := func() bool {
		var on bool
		if err := cs.View(ctx, func(sn *catalog.Snapshot) error { on = sn.Indexed(); return nil }); err != nil {
			t.Fatal(err)
		}
		return on
	}
	if indexed() {
		t.Fatal("the source reads as indexed after a failed first listing committed part of it")
	}
	l.fail = -1
	res, err := reconcile(t, cs, l, providers.Filter{})
	if err != nil || res.IndexBuild == 0 {
		t.Fatalf("first complete listing: %+v, %v; want its indexes built", res, err)
	}
	if !indexed() {
		t.Fatal("not indexed after the build")
	}
	var n int
	if err := cs.View(ctx, func(sn *catalog.Snapshot) error {
		return sn.Walk(ctx, catalog.IndexName, true, 0, func(catalog.Entry) error { n++; return nil })
	}); err != nil || n != len(page) {
		t.Fatalf("the name index walks %d entries (%v), want %d", n, err, len(page))
	}
	res, err = reconcile(t, cs, l, providers.Filter{})
	if err != nil || res.IndexBuild != 0 {
		t.Fatalf("rescan: %+v, %v; want no build", res, err)
	}
}
