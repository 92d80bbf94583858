package events_test

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Follow publishes while its writer still commits, publishes the rest once
// done is closed, and leaves the outbox empty.
func TestFollowPublishesDuringTheScanAndDrainsAtTheEnd(t *testing.T) {
	f := setup(t, time.Hour, 100) // the window must not apply: no coalescing delays
	done := make(chan struct{})
	result := make(chan error, 1)
	go func() { result <- f.pub.Follow(context.Background(), f.src, done) }()
	f.commit(t, "a", "b")
	// Published before done: the event goes out while the "scan" goes on.
	if evs := f.streamEventsAtLeast(t, 1); len(evs[0].Data.Changes) != 2 {
		t.Fatalf("first event %+v, want changes 1-2", evs[0].Data)
	}
	f.commit(t, "c")
	close(done)
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Follow did not return after done")
	}
	evs := f.streamEvents(t, 2)
	if last := evs[1].Data; last.FirstSeq != 3 || last.LastSeq != 3 {
		t.Fatalf("last event %+v, want change 3", last)
	}
	if n := f.pending(t); n != 0 {
		t.Fatalf("%d published changes still in the outbox", n)
	}
}

// Cancelled, Follow returns at once; what it published is still dropped
// from the outbox, so that the next run does not send it again.
func TestFollowCancelledAcksWhatItPublished(t *testing.T) {
	f := setup(t, 0, 100)
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- f.pub.Follow(ctx, f.src, make(chan struct{})) }()
	f.commit(t, "a")
	f.streamEventsAtLeast(t, 1)
	// One event after another: once the second is in the stream, the first
	// is certainly acknowledged to the publisher.
	f.commit(t, "b")
	f.streamEventsAtLeast(t, 2)
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Follow returned %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Follow did not return when cancelled")
	}
	if n := f.pending(t); n > 1 {
		t.Fatalf("%d changes still in the outbox, want at most the last one", n)
	}
}
