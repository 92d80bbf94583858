package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// flaky fails its first fail Runs, then runs until cancelled.
type flaky struct {
	fail int32
	runs atomic.Int32
}

func (f *flaky) Run(ctx context.Context) error {
	if f.runs.Add(1) <= f.fail {
		return errors.New("queue unreachable")
	}
	<-ctx.Done()
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

func testWorker() *Worker {
	return &Worker{consumerState: map[string]*consumerState{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (w *Worker) stateOf(name string) (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cs := w.consumerState[name]
	if cs == nil {
		return "", 0
	}
	return cs.state, cs.failures
}

// A consumer that failed is "restarting" during its backoff, "running"
// once restarted, and its failure count resets once it stays up.
func TestRestartedConsumerRecovers(t *testing.T) {
	w := testWorker()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &flaky{fail: 1}
	done := make(chan struct{})
	go func() { defer close(done); w.runConsumer(ctx, "q", c) }()

	eventually(t, "restarting", func() bool { s, _ := w.stateOf("q"); return s == StateRestarting })
	eventually(t, "the restart", func() bool { return c.runs.Load() == 2 })
	eventually(t, "recovery", func() bool { s, n := w.stateOf("q"); return s == StateRunning && n == 0 })
	cancel()
	<-done
}

// A consumer that keeps failing is reported as failed after failedAfter
// failures in a row.
func TestFailingConsumerIsFailed(t *testing.T) {
	w := testWorker()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &flaky{fail: 1000}
	done := make(chan struct{})
	go func() { defer close(done); w.runConsumer(ctx, "q", c) }()
	eventually(t, "failed", func() bool { s, _ := w.stateOf("q"); return s == StateFailed })
	if n := c.runs.Load(); n < failedAfter {
		t.Fatalf("failed after %d runs, want %d", n, failedAfter)
	}
	cancel()
	<-done
}
