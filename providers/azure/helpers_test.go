package azure

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/notify/notifytest"
)

// recorder is a notify.Applier that records what it is given. fail, when
// set, decides each call's result; gate, when set, holds every call until
// it is closed.
type recorder struct {
	mu    sync.Mutex
	calls [][]notify.Event
	fail  func(call int, evs []notify.Event) error
	gate  chan struct{}
	// entered receives (without blocking) each time Apply is called,
	// before the gate; changed after each call is recorded.
	entered chan struct{}
	changed chan struct{}
	once    sync.Once
}

// hold makes Apply wait until release. Call it before the consumer starts,
// and register release as a cleanup after the consumer's, so that a failing
// test does not leave the consumer stuck (cleanups run last-in first-out).
func (r *recorder) hold() { r.gate = make(chan struct{}) }

func (r *recorder) release() { r.once.Do(func() { close(r.gate) }) }

func newRecorder() *recorder {
	return &recorder{entered: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
}

func (r *recorder) Apply(ctx context.Context, evs []notify.Event) error {
	signal(r.entered)
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(evs))
	n := len(r.calls)
	var err error
	if r.fail != nil {
		err = r.fail(n, evs)
	}
	r.mu.Unlock()
	signal(r.changed)
	return err
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() (calls int, evs []notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		evs = append(evs, c...)
	}
	return len(r.calls), evs
}

// waitFor waits until cond holds for what the recorder has seen.
func (r *recorder) waitFor(t *testing.T, d time.Duration, what string, cond func(calls int, evs []notify.Event) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if cond(r.snapshot()) {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			calls, evs := r.snapshot()
			t.Fatalf("timed out waiting for %s; %d calls, events %+v", what, calls, evs)
		}
	}
}

// eventually polls cond, for state only a server can report, until it
// holds or d passes.
var eventually = notifytest.Eventually

// counter reads one series of a counter from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "outcome" || l.GetName() == "op") && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func keysOf(evs []notify.Event, kind notify.Kind) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		if e.Kind == kind {
			m[e.Key]++
		}
	}
	return m
}
