// Package retry is syncer's one backoff policy: every loop that waits after a
// failure (queue receives, consumer restarts, publishes, NATS reconnects)
// draws its waits here, so that bounds, growth and jitter are decided once.
//
// The n-th wait after a success is drawn uniformly from the upper half of a
// ceiling that doubles from Min up to Max: Ceiling(n) = min(Min·2ⁿ, Max) and
// the wait lies in [max(Min, Ceiling(n)/2), Ceiling(n)]. Every wait is thus
// within [Min, Max] (the bounds the loops document), the waits double on
// average like the unjittered loops they replace, and no two processes that
// failed together retry in lockstep — not even at the first retry or at the
// cap, where a thundering herd is likeliest.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is the bounds of a loop's waits. The zero value is not useful: Min
// must be positive; a Max below Min is taken as Min.
type Policy struct {
	Min, Max time.Duration
}

// Ceiling is the upper bound of the n-th wait (n ≥ 1) and, for n = 0, Min:
// min(Min·2ⁿ, Max). A loop that counts "stayed up long enough" against the
// backoff it would wait next reads it (see Backoff.Ceiling).
func (p Policy) Ceiling(n int) time.Duration {
	hi := max(p.Max, p.Min)
	d := p.Min
	for range max(n, 0) {
		if d >= hi-d { // doubling would reach the cap (and could overflow)
			return hi
		}
		d *= 2
	}
	return min(d, hi)
}

// Delay is the n-th wait (n ≥ 1 counts the failures since the last success),
// jittered. It holds no state, so it also serves callbacks that are handed an
// attempt count (nats.CustomReconnectDelay).
func (p Policy) Delay(n int) time.Duration { return p.delay(n, rand.Float64()) }

// delay maps u in [0, 1) onto the n-th wait's range.
func (p Policy) delay(n int, u float64) time.Duration {
	hi := p.Ceiling(max(n, 1))
	lo := max(p.Min, hi/2)
	if hi <= lo {
		return lo
	}
	return min(lo+time.Duration(u*float64(hi-lo+1)), hi)
}

// Start returns a fresh Backoff following p.
func (p Policy) Start() *Backoff { return &Backoff{p: p, rnd: rand.Float64} }

// Backoff is one loop's place in its Policy. It is not safe for concurrent
// use: each loop (each poller goroutine) owns its own.
type Backoff struct {
	p   Policy
	n   int            // failures since the last Reset
	rnd func() float64 // in [0, 1); a test's own source
}

// Next counts a failure and returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	if b.n < 64 { // past this the ceiling is long capped; keep n from wrapping
		b.n++
	}
	return b.p.delay(b.n, b.rnd())
}

// Reset is for a success: the next failure waits as the first did.
func (b *Backoff) Reset() { b.n = 0 }

// Ceiling is the upper bound of the wait Next would return now: Min after a
// Reset, doubling with every failure up to Max.
func (b *Backoff) Ceiling() time.Duration { return b.p.Ceiling(b.n) }

// Wait counts a failure and sleeps its wait, or less if ctx ends first; it
// reports whether the whole wait passed.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }

// Sleep waits d or until ctx ends; it reports whether d passed. Unlike
// time.Sleep it returns as soon as ctx is cancelled, so a stopping loop does
// not sit out its backoff.
func Sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
