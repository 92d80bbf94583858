package events_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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

// streamEvents returns every event in the stream.
func (f *fixture) streamEvents(t *testing.T, want int) []events.CloudEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := f.js.OrderedConsumer(ctx, "SYNCER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.CloudEvent
	for len(out) < want {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), want, err)
		}
		ev, err := events.Decode(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	info, err := f.js.Stream(ctx, "SYNCER")
	if err != nil {
		t.Fatal(err)
	}
	if info.CachedInfo().State.Msgs != uint64(want) {
		t.Fatalf("stream holds %d events, want %d", info.CachedInfo().State.Msgs, want)
	}
	return out
}

func TestBurstIsCoalescedAndSplitAtTheCap(t *testing.T) {
	f := setup(t, 200*time.Millisecond, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.pub.Run(ctx, []events.Outbox{f.src}, time.Second) }()
	// Ten changes in three commits well within one window.
	f.commit(t, "a", "b", "c")
	f.commit(t, "d", "e", "f", "g")
	f.commit(t, "h", "i", "j")
	evs := f.streamEvents(t, 3)
	cancel()
	wg.Wait()
	var got []string
	for i, ev := range evs {
		if ev.Subject != "src" || ev.Source != "/syncer/sources/src" || ev.SpecVersion != "1.0" {
			t.Errorf("envelope %+v", ev)
		}
		if len(ev.Data.Changes) > 4 {
			t.Errorf("event %d lists %d changes, cap 4", i, len(ev.Data.Changes))
		}
		got = append(got, fmt.Sprintf("%d-%d", ev.Data.FirstSeq, ev.Data.LastSeq))
	}
	if fmt.Sprint(got) != "[1-4 5-8 9-10]" {
		t.Fatalf("event ranges %v, want [1-4 5-8 9-10]", got)
	}
}

func TestRecordedBatchIsRepublishedIdenticallyAndDeduplicated(t *testing.T) {
	f := setup(t, 0, 100)
	f.commit(t, "a", "b")
	// A crash after publishing but before the ack: the batch is recorded
	// and its event is already in the stream.
	b := catalog.Batch{First: 1, Last: 2}
	if err := f.src.BeginBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	changes, _ := f.src.Outbox(context.Background(), 1, 10)
	ev := events.New(f.cat.InstanceID(), "src", changes, time.Now())
	if _, err := f.js.Publish(context.Background(), "syncer.changed.src", []byte(`{"specversion":"1.0","type":"`+events.Type+`"}`),
		jetstream.WithMsgID(ev.ID)); err != nil {
		t.Fatal(err)
	}
	// More changes arrive before the restart; they must not join the
	// recorded batch.
	f.commit(t, "c")
	if err := f.pub.Flush(context.Background(), f.src); err != nil {
		t.Fatal(err)
	}
	evs := f.streamEvents(t, 2)
	if evs[1].Data.FirstSeq != 3 || evs[1].Data.LastSeq != 3 {
		t.Fatalf("second event covers %d-%d, want 3-3", evs[1].Data.FirstSeq, evs[1].Data.LastSeq)
	}
	if st, _ := f.src.Stats(context.Background()); st.Pending != 0 {
		t.Fatalf("%d changes left in the outbox", st.Pending)
	}
}
