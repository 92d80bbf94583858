package schedule_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/schedule"
)

// growing is a one-page listing whose objects may be settling.
type growing struct {
	objs []providers.Object
}

func (g *growing) ListPage(context.Context, string, string) (providers.Page, error) {
	return providers.Page{Objects: g.objs}, nil
}
func (g *growing) Stat(context.Context, string) (providers.Object, error) {
	return providers.Object{}, providers.ErrNotFound
}
func (g *growing) Order() providers.Order { return providers.ByteOrder }
func (g *growing) Close() error           { return nil }

func obj(key string, size int64, settling bool) providers.Object {
	return providers.Object{Key: key, Size: size, ETag: fmt.Sprintf("e%d", size), Settling: settling}
}

// A settling object is neither announced nor deleted: a new one waits until a
// scan sees it settled, a known one keeps its recorded state meanwhile.
func TestReconcileSettlingObjects(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	g := &growing{}
	scan := func() schedule.Result {
		t.Helper()
		res, err := schedule.Reconcile(context.Background(), schedule.Target{ID: "s", Provider: g, Catalog: cs}, schedule.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	g.objs = []providers.Object{obj("a", 1, false), obj("b", 10, true)}
	if res := scan(); res.Added != 1 || res.Deleted != 0 {
		t.Fatalf("first scan %+v: want a added, b (settling) not", res.Progress)
	}
	g.objs = []providers.Object{obj("a", 2, true), obj("b", 20, true)}
	if res := scan(); res.Added != 0 || res.Modified != 0 || res.Deleted != 0 {
		t.Fatalf("both settling %+v: want nothing", res.Progress)
	}
	if e := entry(t, cs, "a"); e.Size != 1 {
		t.Fatalf("a while settling: %+v, want its recorded state (size 1)", e)
	}
	g.objs = []providers.Object{obj("a", 3, false), obj("b", 30, false)}
	if res := scan(); res.Added != 1 || res.Modified != 1 || res.Deleted != 0 {
		t.Fatalf("settled %+v: want b added, a modified", res.Progress)
	}
	changes, err := cs.Outbox(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, fmt.Sprintf("%s %s %d", c.Op, c.Object.Key, c.Object.Size))
	}
	if fmt.Sprint(got) != "[added a 1 modified a 3 added b 30]" {
		t.Fatalf("outbox %v: want each file announced in settled states only", got)
	}
}

func entry(t *testing.T, cs *catalog.Source, key string) catalog.Entry {
	t.Helper()
	e, ok, err := cs.Get(context.Background(), key)
	if err != nil || !ok {
		t.Fatalf("Get(%s) = %v, %v", key, ok, err)
	}
	return e
}
