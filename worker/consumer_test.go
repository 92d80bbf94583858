package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// flaky fails its first Run, then runs until cancelled.
type flaky struct{ runs chan struct{} }

func (f *flaky) Run(ctx context.Context) error {
	f.runs <- struct{}{}
	if len(f.runs) == 1 {
		return errors.New("queue unreachable")
	}
	<-ctx.Done()
	return nil
}

// A consumer that failed is a readiness problem until its restart has
// stayed up for a backoff period, then no longer.
func TestRestartedConsumerRecovers(t *testing.T) {
	w := &Worker{consumerErr: map[string]error{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &flaky{runs: make(chan struct{}, 2)}
	done := make(chan struct{})
	go func() { defer close(done); w.runConsumer(ctx, "q", c) }()

	consumerErr := func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.consumerErr["q"]
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
		}
	}
	eventually("the restart", func() bool { return len(c.runs) == 2 })
	if err := consumerErr(); err == nil {
		t.Fatal("a failed consumer is not reported while its restart is young")
	}
	eventually("recovery", func() bool { return consumerErr() == nil })
	cancel()
	<-done
}
