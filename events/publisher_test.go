package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

type fixture struct {
	cat *catalog.Catalog
	src *catalog.Source
	js  jetstream.JetStream
	pub *events.Publisher
	nc  *nats.Conn
}

func setup(t *testing.T, window time.Duration, maxChanges int) *fixture {
	t.Helper()
	n := testkit.StartNATS(t, t.TempDir(), 0)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	pub, err := events.NewPublisher(nc, events.Options{
		Stream: "SYNCER", SubjectPrefix: "syncer.changed", Window: window, MaxChanges: maxChanges,
		Instance: cat.InstanceID(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.EnsureStream(context.Background()); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	return &fixture{cat: cat, src: cat.Source("src", providers.ByteOrder), js: js, pub: pub, nc: nc}
}

func (f *fixture) commit(t *testing.T, keys ...string) {
	t.Helper()
	var muts []catalog.Mutation
	for _, k := range keys {
		muts = append(muts, catalog.Mutation{Object: providers.Object{Key: k, Size: 1, ETag: "e"}, Origin: catalog.Scan})
	}
	if _, err := f.src.Commit(context.Background(), muts); err != nil {
		t.Fatal(err)
	}
}

// streamEvents returns every event in the stream, which must be want.
func (f *fixture) streamEvents(t *testing.T, want int) []events.CloudEvent {
	t.Helper()
	out := f.streamEventsAtLeast(t, want)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := f.js.Stream(ctx, "SYNCER")
	if err != nil {
		t.Fatal(err)
	}
	if info.CachedInfo().State.Msgs != uint64(want) {
		t.Fatalf("stream holds %d events, want %d", info.CachedInfo().State.Msgs, want)
	}
	return out
}

// Leading edge: a change on a quiet source goes out at once; what follows
// within the window is gathered and cut at the cap.
func TestBurstIsCoalescedAndSplitAtTheCap(t *testing.T) {
	f := setup(t, time.Second, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.pub.Run(ctx, []events.Outbox{f.src}, time.Second) }()
	f.commit(t, "0")
	f.streamEvents(t, 1) // at once: the source was quiet
	// Ten changes in three commits well within the window after it.
	f.commit(t, "a", "b", "c")
	f.commit(t, "d", "e", "f", "g")
	f.commit(t, "h", "i", "j")
	evs := f.streamEvents(t, 4)
	cancel()
	wg.Wait()
	for i, ev := range evs {
		if ev.Subject != "src" || ev.Source != "/syncer/sources/src" || ev.SpecVersion != "1.0" {
			t.Errorf("envelope %+v", ev)
		}
		if len(ev.Data.Changes) > 4 {
			t.Errorf("event %d lists %d changes, cap 4", i, len(ev.Data.Changes))
		}
	}
	if got := ranges(evs); got != "1-1 2-5 6-9 10-11" {
		t.Fatalf("event ranges %v, want 1-1 2-5 6-9 10-11", got)
	}
}

// publishAsIfCrashed puts the event of the outbox's changes first..last in
// the stream the way a publisher that crashed before acking them would have
// left it.
func (f *fixture) publishAsIfCrashed(t *testing.T, instance string, first, last uint64) {
	t.Helper()
	changes, err := f.src.Outbox(context.Background(), first, int(last-first+1))
	if err != nil {
		t.Fatal(err)
	}
	ev := events.New(instance, "src", changes, time.Now())
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.Publish(context.Background(), "syncer.changed.src", body, jetstream.WithMsgID(ev.ID)); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) pending(t *testing.T) uint64 {
	t.Helper()
	st, err := f.src.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Pending
}

func ranges(evs []events.CloudEvent) string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%d-%d", ev.Data.FirstSeq, ev.Data.LastSeq))
	}
	return strings.Join(out, " ")
}

// A crash after publishing but before the outbox dropped the changes: the
// restarted publisher reads from the stream that they are published, and
// neither publishes them again nor loses what came after.
func TestResumesAfterTheStreamsLastEvent(t *testing.T) {
	f := setup(t, 0, 100)
	f.commit(t, "a", "b")
	f.publishAsIfCrashed(t, f.cat.InstanceID(), 1, 2)
	f.commit(t, "c")
	if err := f.pub.Flush(context.Background(), f.src); err != nil {
		t.Fatal(err)
	}
	if got := ranges(f.streamEvents(t, 2)); got != "1-2 3-3" {
		t.Fatalf("events %s, want 1-2 3-3", got)
	}
	if n := f.pending(t); n != 0 {
		t.Fatalf("%d changes left in the outbox", n)
	}
}

// The stream's last event is not this catalog's (another instance, or a
// catalog recreated from scratch): it says nothing about this outbox.
func TestIgnoresAnotherCatalogsEvents(t *testing.T) {
	f := setup(t, 0, 100)
	f.commit(t, "a", "b")
	f.publishAsIfCrashed(t, "0123456789ab", 1, 2)
	if err := f.pub.Flush(context.Background(), f.src); err != nil {
		t.Fatal(err)
	}
	if got := ranges(f.streamEvents(t, 2)); got != "1-2 1-2" {
		t.Fatalf("events %s, want the other catalog's 1-2 and this one's 1-2", got)
	}
}

// A catalog restored from a backup is behind the stream: its outbox is
// published rather than taken as already published.
func TestCatalogBehindTheStreamPublishesItsOutbox(t *testing.T) {
	f := setup(t, 0, 100)
	f.commit(t, "a", "b", "c")
	f.publishAsIfCrashed(t, f.cat.InstanceID(), 1, 3)
	body := []byte(`{"specversion":"1.0","type":"` + events.Type + `"}`)
	if _, err := f.js.Publish(context.Background(), "syncer.changed.src", body,
		jetstream.WithMsgID(events.MessageID(f.cat.InstanceID(), "src", 4, 9))); err != nil {
		t.Fatal(err)
	}
	if err := f.src.Ack(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	f.commit(t, "d")
	if err := f.pub.Flush(context.Background(), f.src); err != nil {
		t.Fatal(err)
	}
	evs := f.streamEvents(t, 3)
	if last := evs[2]; last.Data.FirstSeq != 4 || len(last.Data.Changes) != 1 || last.Data.Changes[0].Key != "d" {
		t.Fatalf("last event %+v, want change 4 (d)", last.Data)
	}
}

// While publishing runs, the outbox is emptied behind it.
func TestRunDropsPublishedChangesFromTheOutbox(t *testing.T) {
	f := setup(t, 0, 100)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.pub.Run(ctx, []events.Outbox{f.src}, time.Second) }()
	defer func() { cancel(); wg.Wait() }()
	f.commit(t, "a", "b")
	f.streamEvents(t, 1)
	deadline := time.Now().Add(10 * time.Second)
	for f.pending(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d published changes still in the outbox", f.pending(t))
		}
		<-time.After(5 * time.Millisecond) // polling the catalog: acks are not signalled
	}
}

// A catalog restored from a backup reuses sequence numbers; once it has
// caught up with the stream, the stream's last event has a number it knows
// but changes it never made. Its own changes must still be published, under
// an id of their own since the old one is in JetStream's duplicate window,
// and a later restart must resume after them.
func TestRestoredCatalogThatCaughtUpPublishesItsChanges(t *testing.T) {
	f := setup(t, 0, 100)
	ctx := context.Background()
	f.commit(t, "a", "b", "c")
	f.publishAsIfCrashed(t, f.cat.InstanceID(), 1, 3)
	if err := f.src.Ack(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// The lost future: changes 4..9 the catalog made before it was
	// restored, published.
	var lost []catalog.Change
	for i := range 6 {
		lost = append(lost, catalog.Change{Seq: uint64(4 + i), Op: catalog.Added,
			Object: providers.Object{Key: fmt.Sprintf("lost%d", i), Size: 1, ETag: "e"}})
	}
	ev := events.New(f.cat.InstanceID(), "src", lost, time.Now())
	body, _ := json.Marshal(ev)
	if _, err := f.js.Publish(ctx, "syncer.changed.src", body, jetstream.WithMsgID(ev.ID)); err != nil {
		t.Fatal(err)
	}
	// The restored catalog's own changes 4..9.
	f.commit(t, "y0", "y1", "y2", "y3", "y4", "y5")
	if err := f.pub.Flush(ctx, f.src); err != nil {
		t.Fatal(err)
	}
	evs := f.streamEvents(t, 3)
	mine := evs[2]
	if mine.Data.FirstSeq != 4 || mine.Data.LastSeq != 9 || mine.Data.Changes[0].Key != "y0" {
		t.Fatalf("third event %d-%d %+v, want the restored catalog's 4-9", mine.Data.FirstSeq, mine.Data.LastSeq, mine.Data.Changes)
	}
	if mine.ID == ev.ID || !strings.HasPrefix(mine.ID, ev.ID+".") {
		t.Fatalf("event id %q, want %q with a suffix", mine.ID, ev.ID)
	}
	if n := f.pending(t); n != 0 {
		t.Fatalf("%d changes left in the outbox", n)
	}
	// A restart resumes after the suffixed event.
	f.commit(t, "z")
	if err := f.pub.Flush(ctx, f.src); err != nil {
		t.Fatal(err)
	}
	if got := ranges(f.streamEvents(t, 4)); got != "1-3 4-9 4-9 10-10" {
		t.Fatalf("events %s, want 1-3 4-9 4-9 10-10", got)
	}
}

// When the stream cannot say what was published (here its last event is
// not an event), the outbox is published from its start and JetStream's
// duplicate window drops what it already holds: no event twice.
func TestUnreadableLastEventRepublishesIntoTheDuplicateWindow(t *testing.T) {
	f := setup(t, 0, 100)
	ctx := context.Background()
	f.commit(t, "a", "b")
	f.publishAsIfCrashed(t, f.cat.InstanceID(), 1, 2)
	if _, err := f.js.Publish(ctx, "syncer.changed.src", []byte("not an event"),
		jetstream.WithMsgID(events.MessageID(f.cat.InstanceID(), "src", 3, 3))); err != nil {
		t.Fatal(err)
	}
	if err := f.pub.Flush(ctx, f.src); err != nil {
		t.Fatal(err)
	}
	info, err := f.js.Stream(ctx, "SYNCER")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("stream holds %d messages, want 2: the republished 1-2 is a duplicate", n)
	}
	if n := f.pending(t); n != 0 {
		t.Fatalf("%d changes left in the outbox", n)
	}
}

// Published reports what JetStream acknowledged, per source, once Run
// publishes the source; it is unknown before.
func TestPublishedSeq(t *testing.T) {
	f := setup(t, 0, 100)
	if seq, ok := f.pub.Published("src"); ok || seq != 0 {
		t.Fatalf("before Run: %d %v", seq, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.pub.Run(ctx, []events.Outbox{f.src}, time.Second) }()
	defer func() { cancel(); wg.Wait() }()
	f.commit(t, "a", "b", "c")
	f.streamEvents(t, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if seq, ok := f.pub.Published("src"); ok && seq == 3 {
			break
		}
		if time.Now().After(deadline) {
			seq, ok := f.pub.Published("src")
			t.Fatalf("published %d %v, want 3", seq, ok)
		}
		<-time.After(5 * time.Millisecond) // polling: publishes are not signalled
	}
	if err := f.pub.SourceHealth("src"); err != nil {
		t.Errorf("health: %v", err)
	}
	if _, ok := f.pub.Published("other"); ok {
		t.Error("a source Run does not publish is known")
	}
}

// A full event goes out at once instead of waiting out the window: with a
// window of an hour, maxChanges changes committed right after an event are
// published as soon as they are committed.
func TestFullEventDoesNotWaitForTheWindow(t *testing.T) {
	f := setup(t, time.Hour, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.pub.Run(ctx, []events.Outbox{f.src}, time.Second) }()
	f.commit(t, "a")
	f.streamEvents(t, 1) // the leading edge: at once
	f.commit(t, "b", "c", "d")
	evs := f.streamEvents(t, 2) // waits at most 10 s, not an hour
	cancel()
	wg.Wait()
	if got := ranges(evs); got != "1-1 2-4" {
		t.Fatalf("event ranges %s, want 1-1 2-4", got)
	}
}

// The window runs from the last event: a change on a quiet source goes out
// at once, and changes right after
// an event are gathered into one event no earlier than a window later.
func TestLeadingEdgeCoalescing(t *testing.T) {
	const window = 400 * time.Millisecond
	f := setup(t, window, 100)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.pub.Run(ctx, []events.Outbox{f.src}, time.Second) }()
	f.commit(t, "a")
	f.streamEvents(t, 1)
	f.commit(t, "b")
	f.commit(t, "c")
	evs := f.streamEvents(t, 2)
	cancel()
	wg.Wait()
	if got := ranges(evs); got != "1-1 2-3" {
		t.Fatalf("event ranges %s, want 1-1 2-3", got)
	}
	if gap := evs[1].Time.Sub(evs[0].Time); gap < window {
		t.Fatalf("second event %v after the first, want at least the window %v", gap, window)
	}
}

// A steady stream of changes is published once per window, never later:
// the window is the bound a change waits, however long the stream lasts.
func TestSteadyStreamWaitsOneWindow(t *testing.T) {
	const window = 100 * time.Millisecond
	f := setup(t, window, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.pub.Run(ctx, []events.Outbox{f.src}, time.Second) }()
	f.commit(t, "first")
	f.streamEvents(t, 1)
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond): // a steady stream of uploads
			}
			if _, err := f.src.Commit(context.Background(), []catalog.Mutation{{
				Object: providers.Object{Key: fmt.Sprintf("k%d", i), Size: 1, ETag: "e"}, Origin: catalog.Scan,
			}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	evs := f.streamEventsAtLeast(t, 6)
	close(stop)
	cancel()
	wg.Wait()
	// Each event after the first holds the changes of about one window: a
	// stretched window would gather two or more windows' worth (20+ at one
	// change per 10 ms). The bound leaves room for a slow machine.
	for i, ev := range evs[2:] {
		if n := len(ev.Data.Changes); n > 17 {
			t.Errorf("event %d holds %d changes: more than one %v window of a change per 10 ms", i+3, n, window)
		}
	}
}

// streamEventsAtLeast returns the first n events of the stream.
func (f *fixture) streamEventsAtLeast(t *testing.T, n int) []events.CloudEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := f.js.OrderedConsumer(ctx, "SYNCER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.CloudEvent
	for len(out) < n {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), n, err)
		}
		ev, err := events.Decode(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}
