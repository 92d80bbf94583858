package events_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

type limitsFixture struct {
	src *catalog.Source
	js  jetstream.JetStream
	pub *events.Publisher
	reg *prometheus.Registry
	log *syncBuf
}

// syncBuf is a log sink tests can read while the publisher writes.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// limitsSetup starts a server configured by configure and, unless stream
// is nil, creates the stream before the publisher looks at it.
func limitsSetup(t *testing.T, configure func(*natsserver.Options), stream *jetstream.StreamConfig) *limitsFixture {
	t.Helper()
	n := testkit.StartNATSWith(t, t.TempDir(), configure)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if stream != nil {
		if _, err := js.CreateStream(context.Background(), *stream); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	f := &limitsFixture{src: cat.Source("src", providers.ByteOrder), js: js, reg: prometheus.NewRegistry(), log: &syncBuf{}}
	f.pub, err = events.NewPublisher(nc, events.Options{
		Stream: "SYNCER", SubjectPrefix: "syncer.changed", MaxChanges: 500,
		Instance: cat.InstanceID(), Log: slog.New(slog.NewTextHandler(f.log, nil)), Registerer: f.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *limitsFixture) commitKeys(t *testing.T, keys []string) {
	t.Helper()
	var muts []catalog.Mutation
	for _, k := range keys {
		muts = append(muts, catalog.Mutation{Object: providers.Object{Key: k, Size: 1, ETag: "e"}, Origin: catalog.Scan})
	}
	if _, err := f.src.Commit(context.Background(), muts); err != nil {
		t.Fatal(err)
	}
}

// collect reads the stream's events until one ends at last, checking that
// the ranges are contiguous from 1; it returns them.
func (f *limitsFixture) collect(t *testing.T, last uint64) []events.CloudEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := f.js.OrderedConsumer(ctx, "SYNCER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.CloudEvent
	next := uint64(1)
	for next <= last {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("after %d events up to seq %d of %d: %v", len(out), next-1, last, err)
		}
		ev, err := events.Decode(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if ev.Data.FirstSeq != next {
			t.Fatalf("event %s starts at %d, want %d (not contiguous)", ev.ID, ev.Data.FirstSeq, next)
		}
		if want := fmt.Sprintf("%d-%d", ev.Data.FirstSeq, ev.Data.LastSeq); !strings.HasSuffix(ev.ID, want) {
			t.Errorf("event id %s not derived from its range %s", ev.ID, want)
		}
		// Listed and skipped changes together are the whole range, in order.
		seq := ev.Data.FirstSeq
		c, s := ev.Data.Changes, ev.Data.Skipped
		for seq <= ev.Data.LastSeq {
			switch {
			case len(c) > 0 && c[0].Seq == seq:
				c = c[1:]
			case len(s) > 0 && s[0].Seq == seq:
				s = s[1:]
			default:
				t.Fatalf("event %s: seq %d neither listed nor skipped", ev.ID, seq)
			}
			seq++
		}
		if len(c)+len(s) > 0 {
			t.Fatalf("event %s lists seqs outside its range", ev.ID)
		}
		if size := len(m.Data()); size > 1<<20 {
			t.Errorf("event %s is %d bytes", ev.ID, size)
		}
		out = append(out, ev)
		next = ev.Data.LastSeq + 1
	}
	return out
}

func (f *limitsFixture) run(t *testing.T) {
	t.Helper()
	if err := f.pub.EnsureStream(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.pub.Run(ctx, []events.Outbox{f.src}, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
}

func longKeys(n, size int) []string {
	keys := make([]string, n)
	for i := range keys {
		p := fmt.Sprintf("k%04d/", i)
		keys[i] = p + strings.Repeat("x", size-len(p))
	}
	return keys
}

func listedKeys(evs []events.CloudEvent) []string {
	var keys []string
	for _, ev := range evs {
		for _, c := range ev.Data.Changes {
			keys = append(keys, c.Key)
		}
	}
	return keys
}

func sameKeys(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d changes delivered, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("change %d is %.20s…, want %.20s…", i, got[i], want[i])
		}
	}
}

// 500 changes with 3 KB keys are 1.5 MB of event at the default 1 MB
// max_payload: cut by size, every change arrives, in order.
func TestPublishBoundsEventsByTheServersMaxPayload(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxPayload int32
	}{{"default 1MB", 0}, {"64KB", 64 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			f := limitsSetup(t, func(o *natsserver.Options) {
				if tc.maxPayload > 0 {
					o.MaxPayload = tc.maxPayload
				}
			}, nil)
			keys := longKeys(500, 3<<10)
			f.commitKeys(t, keys)
			f.run(t)
			evs := f.collect(t, 500)
			sameKeys(t, listedKeys(evs), keys)
			if len(evs) < 2 {
				t.Errorf("%d events; 1.5 MB of changes must be split", len(evs))
			}
			for _, ev := range evs {
				if len(ev.Data.Skipped) > 0 {
					t.Errorf("event %s skipped %v", ev.ID, ev.Data.Skipped)
				}
			}
			if got := f.dropped(t); got != 0 {
				t.Errorf("syncer_events_dropped_total = %v", got)
			}
		})
	}
}

// dropped is syncer_events_dropped_total{source="src",reason="too_large"}.
func (f *limitsFixture) dropped(t *testing.T) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "syncer_events_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["source"] == "src" && labels["reason"] == events.ReasonTooLarge {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A stream with max_msg_size 1 KB: events are cut to fit it, and a change
// whose key alone is longer is named as skipped, in a range that keeps
// the events contiguous; the changes after it are not held up.
func TestPublishFitsTheStreamsMaxMsgSizeAndSkipsWhatCannotFit(t *testing.T) {
	f := limitsSetup(t, nil, &jetstream.StreamConfig{
		Name: "SYNCER", Subjects: []string{"syncer.changed.>"}, Storage: jetstream.MemoryStorage, MaxMsgSize: 1024,
		Duplicates: time.Minute,
	})
	keys := longKeys(40, 40)
	huge := strings.Repeat("h", 2000)
	all := append(append(append([]string{}, keys[:20]...), huge), keys[20:]...)
	f.commitKeys(t, all)
	f.run(t)
	evs := f.collect(t, uint64(len(all)))
	sameKeys(t, listedKeys(evs), keys)
	var skipped []events.Skipped
	for _, ev := range evs {
		skipped = append(skipped, ev.Data.Skipped...)
	}
	if len(skipped) != 1 || skipped[0].Seq != 21 || skipped[0].KeyBytes != 2000 || skipped[0].Reason != events.ReasonTooLarge || skipped[0].Op != "added" {
		t.Fatalf("skipped = %+v, want seq 21 (2000-byte key, too_large)", skipped)
	}
	if got := f.dropped(t); got != 1 {
		t.Errorf("syncer_events_dropped_total = %v, want 1", got)
	}
	if log := f.log.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "seq=21") || !strings.Contains(log, "source=src") {
		t.Errorf("no ERROR log naming source and seq:\n%s", log)
	}
}

// The stream's limit shrinks while the publisher runs: the rejected event
// is split into halves and retried until every change is in.
func TestPublishSplitsAnEventRejectedAsTooBig(t *testing.T) {
	f := limitsSetup(t, nil, nil)
	keys := longKeys(101, 100)
	f.commitKeys(t, keys[:1])
	f.run(t)
	f.collect(t, 1)
	ctx := context.Background()
	s, err := f.js.Stream(ctx, "SYNCER")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = 4096
	if _, err := f.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	f.commitKeys(t, keys[1:]) // ~20 KB as one event, cut before the publisher knows
	evs := f.collect(t, 101)
	sameKeys(t, listedKeys(evs), keys)
	if !strings.Contains(f.log.String(), "in halves") {
		t.Errorf("no split logged:\n%s", f.log.String())
	}
	if got := f.dropped(t); got != 0 {
		t.Errorf("syncer_events_dropped_total = %v", got)
	}
}

func TestEnsureStreamRefusesAStreamItCannotUse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream jetstream.StreamConfig
		want   []string
	}{
		{"foreign stream owns the subjects",
			jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"syncer.>"}, Storage: jetstream.MemoryStorage},
			[]string{"create stream SYNCER", "syncer.changed.>", "stream OTHER"}},
		{"subjects do not cover",
			jetstream.StreamConfig{Name: "SYNCER", Subjects: []string{"syncer.changed.a"}, Storage: jetstream.MemoryStorage},
			[]string{"stream SYNCER", "[syncer.changed.a]", "do not cover", "syncer.changed.>"}},
		{"discard new with limits",
			jetstream.StreamConfig{Name: "SYNCER", Subjects: []string{"syncer.changed.>"}, Storage: jetstream.MemoryStorage,
				Discard: jetstream.DiscardNew, MaxMsgs: 100},
			[]string{"stream SYNCER", "discard: new", "max_msgs 100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := limitsSetup(t, nil, &tc.stream)
			err := f.pub.EnsureStream(context.Background())
			if !errors.Is(err, events.ErrStreamUnusable) {
				t.Fatalf("EnsureStream = %v, want ErrStreamUnusable", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
	// Wider subjects and discard new without count limits are fine.
	for _, cfg := range []jetstream.StreamConfig{
		{Name: "SYNCER", Subjects: []string{"syncer.*.>"}, Storage: jetstream.MemoryStorage},
		{Name: "SYNCER", Subjects: []string{"syncer.>"}, Storage: jetstream.MemoryStorage, Discard: jetstream.DiscardNew, MaxAge: time.Hour},
	} {
		f := limitsSetup(t, nil, &cfg)
		if err := f.pub.EnsureStream(context.Background()); err != nil {
			t.Errorf("stream %v: %v", cfg.Subjects, err)
		}
	}
}

// nats.jsDomain: the stream is created and events published through the
// domain's API; nats.replicas goes into the stream syncer creates.
func TestPublishThroughAJetStreamDomainWithReplicas(t *testing.T) {
	n := testkit.StartNATSWith(t, t.TempDir(), func(o *natsserver.Options) { o.JetStreamDomain = "hub" })
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
	opts := events.Options{
		Stream: "SYNCER", SubjectPrefix: "syncer.changed", Domain: "hub", Replicas: 3,
		Instance: cat.InstanceID(), Log: slog.New(slog.NewTextHandler(&syncBuf{}, nil)),
	}
	pub, err := events.NewPublisher(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A domain nobody serves: the publisher goes through $JS.nope.API.
	wrong := opts
	wrong.Domain = "nope"
	wpub, err := events.NewPublisher(nc, wrong)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := wpub.EnsureStream(wctx); err == nil {
		t.Fatal("EnsureStream through an unserved domain succeeded: the domain is not used")
	}
	// One server: three replicas are refused, which shows they were asked for.
	if err := pub.EnsureStream(context.Background()); err == nil || !strings.Contains(strings.ToLower(err.Error()), "replicas") {
		t.Fatalf("EnsureStream with 3 replicas on one server = %v", err)
	}
	opts.Replicas = 1
	if pub, err = events.NewPublisher(nc, opts); err != nil {
		t.Fatal(err)
	}
	if err := pub.EnsureStream(context.Background()); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.NewWithDomain(nc, "hub")
	if err != nil {
		t.Fatal(err)
	}
	f := &limitsFixture{src: cat.Source("src", providers.ByteOrder), js: js, pub: pub}
	f.commitKeys(t, []string{"a", "b"})
	if err := pub.Flush(context.Background(), f.src); err != nil {
		t.Fatal(err)
	}
	sameKeys(t, listedKeys(f.collect(t, 2)), []string{"a", "b"})
}
