package gcs

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// pipeline is the notification path end to end: fake-gcs-server → pstest →
// Consumer → notify.Router → provider stat → catalog.
type pipeline struct {
	*env
	cat   *catalog.Source
	store *Provider
	c     *Consumer
}

// newPipeline starts a consumer of bucket b whose applier is the real
// notify.Router over a catalog in a temporary directory.
func newPipeline(t *testing.T, b string, filter providers.Filter) *pipeline {
	t.Helper()
	e := newEnv(t)
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	src := cat.Source("src1", providers.ByteOrder)
	p, err := New(context.Background(), Config{ID: "src1", Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	router, err := notify.NewRouter([]notify.Route{{
		SourceID: "src1", Provider: "gcs", Bucket: b, Filter: filter, Store: p, Catalog: src,
	}}, notify.RouterOptions{Registerer: e.reg, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline{env: e, cat: src, store: p, c: e.start(t, router)}
}

// changes renders the outbox as "op key@version" lines.
func (p *pipeline) changes(t *testing.T) string {
	t.Helper()
	chs, err := p.cat.Outbox(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, c := range chs {
		s = append(s, fmt.Sprintf("%s %s@%s", c.Op, c.Object.Key, c.Object.Version))
	}
	return strings.Join(s, "\n")
}

func (p *pipeline) waitChanges(t *testing.T, want ...string) {
	t.Helper()
	w := strings.Join(want, "\n")
	waitFor(t, "outbox:\n"+w, func() bool { return p.changes(t) == w })
}

// routerCount reads syncer_notifications_total of src1, counted by the
// router.
func routerCount(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "syncer_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["source"] == "src1" && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestEndToEnd: create, overwrite, delete in a plain bucket become added,
// modified, deleted; duplicates and late messages change nothing; keys
// outside the prefix are filtered.
func TestEndToEnd(t *testing.T) {
	pl := newPipeline(t, bucket, providers.Filter{Prefix: "albums/", Exclude: []string{"*.tmp"}})
	b := pl.notifyingBucket(t, bucket, storage.JSONPayload)
	const key = "albums/a b+c.png"

	g1 := putGen(t, b, key, "one")
	pl.waitChanges(t, fmt.Sprintf("added %s@%d", key, g1))
	g2 := putGen(t, b, key, "two!")
	pl.waitChanges(t, fmt.Sprintf("added %s@%d", key, g1), fmt.Sprintf("modified %s@%d", key, g2))
	if err := b.Object(key).Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("added %s@%d", key, g1),
		fmt.Sprintf("modified %s@%d", key, g2),
		fmt.Sprintf("deleted %s@%d", key, g2),
	}
	pl.waitChanges(t, want...)
	pl.allAcked(t)
	if n := pl.c.count(string(ReasonOverwritten)); n != 1 {
		t.Errorf("overwritten %v, want 1", n)
	}

	// Every message again, duplicated and late: the finalizes of g1 and g2
	// arrive after the delete. Nothing is resurrected.
	topic := "projects/" + project + "/topics/" + topicID
	for _, m := range pl.ps.Messages() {
		pl.ps.Publish(topic, m.Data, m.Attributes)
	}
	// Outside the prefix, and excluded below it.
	putGen(t, b, "other/x.png", "x")
	putGen(t, b, "albums/upload.tmp", "x")
	pl.allAcked(t)
	waitFor(t, "filtered", func() bool { return routerCount(t, pl.reg, notify.OutcomeSkippedFiltered) == 2 })
	if got := pl.changes(t); got != strings.Join(want, "\n") {
		t.Fatalf("after duplicates and late messages:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if _, ok, err := pl.cat.Get(context.Background(), key); ok || err != nil {
		t.Errorf("deleted key is back (%v, %v)", ok, err)
	}
}

// TestEndToEndVersioned: in a versioned bucket an overwrite archives the old
// generation and a delete archives the live one. Deleting a noncurrent
// generation (what a lifecycle rule pruning old versions does) sends
// OBJECT_DELETE for a key whose live object stays: it must not be deleted,
// even when the catalog learned the key from a scan and has no sequencer to
// compare with.
func TestEndToEndVersioned(t *testing.T) {
	pl := newPipeline(t, bucket, providers.Filter{})
	pl.gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket, VersioningEnabled: true})
	b := pl.storage.Bucket(bucket)
	const key = "k.png"

	// Written before notifications are on, recorded as a scan would.
	g1 := putGen(t, b, key, "one")
	g2 := putGen(t, b, key, "two!")
	live, err := pl.store.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.cat.Commit(context.Background(), []catalog.Mutation{{Object: live, Origin: catalog.Scan}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNotification(context.Background(), &storage.Notification{
		TopicProjectID: project, TopicID: topicID, PayloadFormat: storage.JSONPayload,
	}); err != nil {
		t.Fatal(err)
	}
	scanned := fmt.Sprintf("added %s@%d", key, g2)

	if err := b.Object(key).Generation(g1).Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	pl.allAcked(t)
	waitFor(t, "noncurrent delete applied", func() bool { return pl.c.count(outcomeApplied) == 1 })
	if got := pl.changes(t); got != scanned {
		t.Fatalf("deleting noncurrent generation %d changed the catalog:\n%s", g1, got)
	}

	g3 := putGen(t, b, key, "three")
	pl.waitChanges(t, scanned, fmt.Sprintf("modified %s@%d", key, g3))
	if err := b.Object(key).Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	pl.waitChanges(t, scanned, fmt.Sprintf("modified %s@%d", key, g3), fmt.Sprintf("deleted %s@%d", key, g3))
	pl.allAcked(t)
	if n := pl.c.count(string(ReasonOverwritten)); n != 1 {
		t.Errorf("overwritten %v, want 1 (the archive of generation %d)", n, g2)
	}
}
