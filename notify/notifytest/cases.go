package notifytest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/notify"
)

// startHeld starts a consumer whose applies are held, sends key and waits
// until its apply is in hand.
func startHeld(t *testing.T, h Harness, key string) *env {
	t.Helper()
	e := newEnv(t, h)
	e.gate.Hold()
	e.start(t)
	e.q.Send(t, Bucket, key, 1)
	select {
	case <-e.gate.Entered():
	case <-time.After(h.Wait):
		t.Fatal("the message was not applied")
	}
	return e
}

// testAckAfterApply: while the commit of a message's events is held, the
// message stays in the queue; once committed, it is acknowledged.
func testAckAfterApply(t *testing.T, h Harness) {
	e := startHeld(t, h, Prefix+"held.png")
	if n := e.q.Unsettled(t); n != 1 {
		t.Fatalf("%d messages unsettled while the apply is held, want 1: acknowledged before apply", n)
	}
	if e.entrySeq(t, Prefix+"held.png") != 0 {
		t.Fatal("committed while held")
	}
	e.gate.Release()
	Eventually(t, h.Wait, "the message to be acknowledged", func() bool { return e.q.Unsettled(t) == 0 })
	if e.entrySeq(t, Prefix+"held.png") == 0 {
		t.Fatal("acknowledged, not committed")
	}
}

// testFailedApplyRedelivered: every apply of a message's first delivery
// fails (the batch's, then its own); it comes back and is committed once,
// and a message beside it is not held back.
func testFailedApplyRedelivered(t *testing.T, h Harness) {
	e := newEnv(t, h)
	var firstDeliveryOver atomic.Bool
	e.gate.FailWith(func(evs []notify.Event) error {
		if firstDeliveryOver.Load() || !slices.ContainsFunc(evs, func(ev notify.Event) bool { return ev.Key == Prefix+"crash.png" }) {
			return nil
		}
		if len(evs) == 1 {
			firstDeliveryOver.Store(true)
		}
		return errors.New("catalog commit failed")
	})
	e.start(t)
	start := time.Now()
	e.q.Send(t, Bucket, Prefix+"crash.png", 1)
	e.q.Send(t, Bucket, Prefix+"fine.png", 2)
	Eventually(t, h.Wait+2*h.Redelivery, "the failed message to be committed", func() bool {
		return e.entrySeq(t, Prefix+"crash.png") != 0
	})
	took := time.Since(start) // polled every 10 ms: at most that late
	Eventually(t, h.Wait, "the queue to drain", func() bool { return e.q.Unsettled(t) == 0 })
	if e.entrySeq(t, Prefix+"fine.png") == 0 {
		t.Error("the other message was not committed")
	}
	if n := e.count(notify.OutcomeApplied); n != 2 {
		t.Errorf("applied %d, want 2: each message committed once", n)
	}
	if n := e.count(notify.OutcomeFailed); n < 1 {
		t.Errorf("failed %d, want at least 1", n)
	}
	if took < h.MinRedelivery {
		t.Errorf("committed after %v: redelivered before %v", took, h.MinRedelivery)
	}
}

// testPoison: a message whose apply always fails ends in the dead-letter
// path and leaves the queue.
func testPoison(t *testing.T, h Harness) {
	if h.NoDeadLetter != "" {
		t.Skip(h.NoDeadLetter)
	}
	e := newEnv(t, h)
	e.gate.FailWith(func([]notify.Event) error { return errors.New("always failing") })
	e.start(t)
	e.q.Send(t, Bucket, Prefix+"poison.png", 1)
	// At least once: a dead-letter path delivers at least once too (pstest
	// may move a message redelivered meanwhile a second time).
	Eventually(t, h.Wait+4*h.Redelivery, "the message to be dead-lettered", func() bool { return e.q.DeadLettered(t) >= 1 })
	Eventually(t, h.Wait, "the queue to drain", func() bool { return e.q.Unsettled(t) == 0 })
	if e.entrySeq(t, Prefix+"poison.png") != 0 {
		t.Error("a failing message was committed")
	}
}

// testShutdown: Run asked to stop while an apply is in hand waits for it,
// and the message is committed and acknowledged rather than redelivered.
func testShutdown(t *testing.T, h Harness) {
	e := startHeld(t, h, Prefix+"inflight.png")
	e.stop()
	select {
	case err := <-e.done:
		t.Fatalf("Run returned %v while an apply was in hand", err)
	default:
	}
	e.gate.Release()
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		e.done <- nil // for the cleanup
	case <-time.After(h.Wait):
		t.Fatal("Run did not return after the apply finished")
	}
	if e.entrySeq(t, Prefix+"inflight.png") == 0 {
		t.Fatal("the apply in hand was not committed")
	}
	Eventually(t, h.Wait, "the message to be acknowledged", func() bool { return e.q.Unsettled(t) == 0 })
}

// testMissingQueue: a consumer of a queue that does not exist fails at
// start with an error naming it.
func testMissingQueue(t *testing.T, h Harness) {
	q := h.New(t)
	r, name := q.Missing(t)
	ctx, cancel := context.WithTimeout(context.Background(), h.Wait)
	defer cancel()
	err := r.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run on a missing queue: %v (ctx %v), want an error at once", err, ctx.Err())
	}
	if !strings.Contains(err.Error(), name) {
		t.Errorf("the error does not name %q: %v", name, err)
	}
	if h.IsMissing != nil && !h.IsMissing(err) {
		t.Errorf("the error does not wrap the SDK's missing-queue error: %v", err)
	}
}

// testDuplicate: the same notification delivered twice is committed once.
func testDuplicate(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.start(t)
	e.q.Send(t, Bucket, Prefix+"dup.png", 7)
	e.q.Send(t, Bucket, Prefix+"dup.png", 7)
	Eventually(t, h.Wait, "both deliveries to be decided", func() bool {
		return e.count(notify.OutcomeApplied)+e.count(notify.OutcomeSkippedStale) == 2
	})
	Eventually(t, h.Wait, "the queue to drain", func() bool { return e.q.Unsettled(t) == 0 })
	if n := e.count(notify.OutcomeApplied); n != 1 {
		t.Errorf("applied %d, want 1", n)
	}
}

// testForeignAndOutsidePrefix: an event of a bucket no source watches and
// one outside the source's prefix are counted by the Router and
// acknowledged, and change nothing.
func testForeignAndOutsidePrefix(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.start(t)
	e.q.Send(t, "other-bucket", Prefix+"a.png", 1)
	e.q.Send(t, Bucket, "elsewhere/b.png", 2)
	Eventually(t, h.Wait, "both counted", func() bool {
		return e.count(notify.OutcomeSkippedForeign) == 1 && e.count(notify.OutcomeSkippedFiltered) == 1
	})
	Eventually(t, h.Wait, "both acknowledged", func() bool { return e.q.Unsettled(t) == 0 })
	if n := e.count(notify.OutcomeApplied); n != 0 {
		t.Errorf("applied %d, want 0", n)
	}
	if e.entrySeq(t, "elsewhere/b.png") != 0 {
		t.Error("a key outside the prefix was committed")
	}
}
