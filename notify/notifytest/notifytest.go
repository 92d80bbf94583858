// Package notifytest is the conformance suite every queue transport of the
// notification kernel passes against its emulator (SQS on fauxqs, Storage
// Queue on Azurite, Pub/Sub on pstest): each transport's test file supplies a
// Harness and calls Run. The cases are the kernel's contract as a user sees
// it: a message is acknowledged only after its events were committed; a
// failed apply is redelivered and committed once; a poison message ends in
// the transport's dead-letter path; shutdown finishes the work in hand; a
// missing queue is a clear error at start; a duplicate delivery is committed
// once; events of other buckets and keys outside the prefix are counted and
// acknowledged. Events go through a real notify.Router into a real catalog.
package notifytest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// What the suite's source watches.
const (
	SourceID = "lib"
	Bucket   = "media"
	Prefix   = "photos/"
)

// Runner is a consumer: notify.Consumer and the transports' wrappers of it.
type Runner interface {
	Run(ctx context.Context) error
}

// Harness is one transport under test.
type Harness struct {
	// Provider is the provider of the transport's events ("s3", "gcs",
	// "azure"); Transport its notify.Transport* name.
	Provider, Transport string
	// Redelivery bounds how long a message whose apply failed takes to
	// come back (its visibility timeout, a nack delay).
	Redelivery time.Duration
	// MinRedelivery is how long a failed message stays away at least (its
	// visibility timeout, the nack delay): it is not redelivered sooner.
	MinRedelivery time.Duration
	// IsMissing, when set, tells the SDK's own error for a missing queue,
	// which the start-up error must wrap.
	IsMissing func(err error) bool
	// New makes a fresh queue (subscription) for one case.
	New func(t *testing.T) Queue
	// Wait bounds each wait of a case (default 30 s: emulators share a
	// loaded machine; a case that holds never waits this long). A
	// meta-test running cases expected to fail may shorten it.
	Wait time.Duration
	// NoDeadLetter, when set, says why the transport has no dead-letter
	// path the suite can observe; the Poison case is then skipped with it.
	NoDeadLetter string
}

// Queue is one case's queue.
type Queue interface {
	// Consumer returns a consumer of the queue for source SourceID,
	// counting into reg and applying to app. A poison message is one
	// delivered more than twice.
	Consumer(t *testing.T, app notify.Applier, reg prometheus.Registerer) Runner
	// Missing returns a consumer of a queue that does not exist, and the
	// name its start-up error must contain.
	Missing(t *testing.T) (Runner, string)
	// Send delivers the notification of an upsert of key in bucket,
	// complete (size, ETag, sequencer seq), the way the provider would.
	Send(t *testing.T, bucket, key string, seq int)
	// Unsettled counts the messages neither acknowledged nor
	// dead-lettered: visible or in flight.
	Unsettled(t *testing.T) int
	// DeadLettered counts the messages in the dead-letter path.
	DeadLettered(t *testing.T) int
}

// Run runs every case against h.
func Run(t *testing.T, h Harness) {
	if h.Wait <= 0 {
		h.Wait = 30 * time.Second
	}
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"AckAfterApply", testAckAfterApply},
		{"FailedApplyRedelivered", testFailedApplyRedelivered},
		{"Poison", testPoison},
		{"ShutdownFinishesInFlight", testShutdown},
		{"MissingQueue", testMissingQueue},
		{"Duplicate", testDuplicate},
		{"ForeignAndOutsidePrefix", testForeignAndOutsidePrefix},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, h) })
	}
}

// env is one case: a queue, a catalog behind a Router, and a gate in front
// of it that can hold or fail applies.
type env struct {
	h    Harness
	q    Queue
	reg  *prometheus.Registry
	cat  *catalog.Source
	gate *Gate
	done chan error
	stop context.CancelFunc
}

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	reg := prometheus.NewRegistry()
	src := c.Source(SourceID, providers.ByteOrder)
	router, err := notify.NewRouter([]notify.Route{{
		SourceID: SourceID, Provider: h.Provider, Bucket: Bucket,
		Filter: providers.Filter{Prefix: Prefix}, Store: noStat{}, Catalog: src,
	}}, notify.RouterOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &env{h: h, q: h.New(t), reg: reg, cat: src, gate: NewGate(router)}
}

// start runs the consumer until the case ends (or stop is called).
func (e *env) start(t *testing.T) {
	t.Helper()
	r := e.q.Consumer(t, e.gate, e.reg)
	ctx, cancel := context.WithCancel(context.Background())
	e.done, e.stop = make(chan error, 1), cancel
	go func() { e.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		e.gate.Release()
		select {
		case err := <-e.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(e.h.Wait):
			t.Error("Run did not return after cancel")
		}
	})
}

// count reads syncer_notifications_total{source=SourceID, transport, outcome}.
func (e *env) count(outcome string) int {
	m := notify.NewMetrics(e.reg)
	return int(testutil.ToFloat64(m.Total.WithLabelValues(SourceID, e.h.Transport, outcome)))
}

// entrySeq is the catalog's sequence of key's entry; 0 when absent.
func (e *env) entrySeq(t *testing.T, key string) uint64 {
	t.Helper()
	en, ok, err := e.cat.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return 0
	}
	return en.Seq
}

// Eventually polls cond until it holds or d passes.
func Eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// noStat is the store behind the suite's route: the suite sends only
// complete events, which the Router commits without asking the store.
type noStat struct{}

func (noStat) Stat(context.Context, string) (providers.Object, error) {
	return providers.Object{}, errors.New("notifytest: unexpected stat: the suite's events are complete")
}

// Gate is an Applier in front of another that can hold applies until
// released and fail them on demand.
type Gate struct {
	next    notify.Applier
	mu      sync.Mutex
	held    chan struct{} // closed by Release; nil: not holding
	fail    func(events []notify.Event) error
	entered chan struct{}
	calls   int
}

// NewGate returns a Gate that passes every apply on to next.
func NewGate(next notify.Applier) *Gate {
	return &Gate{next: next, entered: make(chan struct{}, 64)}
}

// Hold makes applies wait until Release.
func (g *Gate) Hold() {
	g.mu.Lock()
	g.held = make(chan struct{})
	g.mu.Unlock()
}

// Release lets held applies (and later ones) through.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != nil {
		select {
		case <-g.held:
		default:
			close(g.held)
		}
	}
}

// FailWith makes applies return fn's error (nil: pass on).
func (g *Gate) FailWith(fn func(events []notify.Event) error) {
	g.mu.Lock()
	g.fail = fn
	g.mu.Unlock()
}

// Entered is signalled when an apply starts.
func (g *Gate) Entered() <-chan struct{} { return g.entered }

// Apply implements notify.Applier.
func (g *Gate) Apply(ctx context.Context, events []notify.Event) error {
	g.mu.Lock()
	g.calls++
	held, fail := g.held, g.fail
	g.mu.Unlock()
	select {
	case g.entered <- struct{}{}:
	default:
	}
	if held != nil {
		<-held
	}
	if fail != nil {
		if err := fail(events); err != nil {
			return err
		}
	}
	return g.next.Apply(ctx, events)
}
