package retry

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// The documented loops' bounds: every wait stays within them, whatever the
// random draw.
var policies = []Policy{
	{Min: 200 * time.Millisecond, Max: 30 * time.Second}, // SQS receive
	{Min: time.Second, Max: 30 * time.Second},            // Storage Queue dequeue
	{Min: time.Second, Max: time.Minute},                 // consumer restart
	{Min: 100 * time.Millisecond, Max: 10 * time.Second}, // publish
	{Min: 500 * time.Millisecond, Max: time.Second},      // NATS reconnect
	{Min: time.Second, Max: time.Second},                 // degenerate: no room to jitter
	{Min: 3, Max: 7},                                     // odd nanoseconds
	{Min: time.Second, Max: 0},                           // Max below Min is Min
}

func TestWaitsStayWithinBounds(t *testing.T) {
	for _, p := range policies {
		hi := max(p.Max, p.Min)
		for _, u := range []float64{0, 0.5, 1 - 1e-16} {
			for n := 1; n <= 80; n++ {
				if d := p.delay(n, u); d < p.Min || d > hi {
					t.Fatalf("%+v: wait %d (u=%v) = %v, outside [%v, %v]", p, n, u, d, p.Min, hi)
				}
			}
		}
		b := p.Start()
		for range 1000 {
			if d := b.Next(); d < p.Min || d > hi {
				t.Fatalf("%+v: Next = %v, outside [%v, %v]", p, d, p.Min, hi)
			}
		}
	}
}

// The ceiling doubles from Min to Max, and the n-th wait is drawn from its
// upper half: the waits of the unjittered loops (Min, 2·Min, …) are the
// lower ends.
func TestGrowth(t *testing.T) {
	p := Policy{Min: 200 * time.Millisecond, Max: 30 * time.Second}
	want := []time.Duration{200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000}
	for n, w := range want {
		if got := p.Ceiling(n); got != w*time.Millisecond {
			t.Errorf("Ceiling(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
	for n := 1; n < len(want); n++ {
		hi := want[n] * time.Millisecond
		lo := max(p.Min, hi/2)
		if got := p.delay(n, 0); got != lo {
			t.Errorf("wait %d at u=0 = %v, want %v", n, got, lo)
		}
		if got := p.delay(n, 1-1e-16); got != hi {
			t.Errorf("wait %d at u→1 = %v, want %v", n, got, hi)
		}
	}
	if got := (Policy{Min: time.Hour, Max: 2 * time.Hour}).Ceiling(1 << 30); got != 2*time.Hour {
		t.Errorf("a huge n: Ceiling = %v, want the cap", got)
	}
}

// Waits are spread over their whole range, not bunched at one value: two
// loops that failed together do not retry together.
func TestJitterCoversTheRange(t *testing.T) {
	p := Policy{Min: time.Second, Max: time.Minute}
	b := p.Start()
	b.rnd = rand.New(rand.NewPCG(1, 2)).Float64
	for n := 1; n <= 8; n++ { // up to and past the cap
		hi := p.Ceiling(n)
		lo := max(p.Min, hi/2)
		width := hi - lo
		var lowQ, highQ bool // a draw in the range's lowest and highest quarter
		seen := map[time.Duration]bool{}
		for range 200 {
			b.n = n - 1
			d := b.Next()
			if d < lo || d > hi {
				t.Fatalf("wait %d = %v, outside [%v, %v]", n, d, lo, hi)
			}
			lowQ = lowQ || d < lo+width/4
			highQ = highQ || d > hi-width/4
			seen[d] = true
		}
		if !lowQ || !highQ || len(seen) < 150 {
			t.Errorf("wait %d: 200 draws in [%v, %v] reached low quarter %v, high quarter %v, %d distinct",
				n, lo, hi, lowQ, highQ, len(seen))
		}
	}
}

// After a success the next failure waits as the first did.
func TestReset(t *testing.T) {
	p := Policy{Min: time.Second, Max: time.Minute}
	b := p.Start()
	b.rnd = func() float64 { return 0 }
	for range 10 {
		b.Next()
	}
	if got := b.Ceiling(); got != time.Minute {
		t.Fatalf("after 10 failures Ceiling = %v, want the cap", got)
	}
	b.Reset()
	if got := b.Ceiling(); got != time.Second {
		t.Fatalf("after Reset Ceiling = %v, want Min", got)
	}
	if got := b.Next(); got != time.Second {
		t.Fatalf("first wait after Reset = %v, want %v", got, time.Second)
	}
	if got := b.Ceiling(); got != 2*time.Second {
		t.Fatalf("Ceiling after one failure = %v, want 2s", got)
	}
}

// A cancelled context ends a wait at once, not after it: the waits here are
// an hour, the deadline seconds.
func TestWaitEndsWithContext(t *testing.T) {
	b := Policy{Min: time.Hour, Max: 2 * time.Hour}.Start()
	wait := func(ctx context.Context, what string, cancel context.CancelFunc) {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- b.Wait(ctx) }()
		if cancel != nil {
			cancel()
		}
		select {
		case passed := <-done:
			if passed {
				t.Fatalf("Wait %s reported the wait passed", what)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Wait %s did not return once its context was cancelled", what)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wait(ctx, "on a cancelled context", nil)

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	wait(ctx, "cancelled midway", cancel)
}

func TestSleepPasses(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep on a live context reported cancellation")
	}
}
