package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/worker"
)

// scanPublishTail bounds the publishing left once a scan has ended (NATS
// away: retried until then); what is not published stays in the outbox for
// the next run.
const scanPublishTail = 2 * time.Minute

// scanPublisher publishes a `syncer scan`'s changes while it scans. A nil
// one (--publish=false) does nothing.
type scanPublisher struct {
	done   chan struct{} // closed when the scan has ended
	cancel context.CancelFunc
	result chan error
	stdout io.Writer
	events int // written by the publishing goroutine; read after result
}

// startPublishing connects to NATS and follows cs's outbox on a goroutine of
// its own: the embedded server's start and the events overlap the listing.
// Its errors are reported by finish, after the scan, as before: a scan
// commits its changes whether or not NATS is there.
func startPublishing(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, cs *catalog.Source, log *slog.Logger, stdout io.Writer) *scanPublisher {
	pctx, cancel := context.WithCancel(ctx)
	sp := &scanPublisher{done: make(chan struct{}), cancel: cancel, result: make(chan error, 1), stdout: stdout}
	go sp.bounded(pctx, cancel)
	go func() { sp.result <- sp.run(pctx, cfg, cat, cs, log) }()
	return sp
}

func (sp *scanPublisher) run(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, cs *catalog.Source, log *slog.Logger) error {
	nc, embedded, err := worker.ConnectNATS(cfg.NATS, "syncer-scan", log)
	if err != nil {
		return err
	}
	defer embedded.Shutdown() // after the connection closes
	defer nc.Close()
	pub, err := events.NewPublisher(nc, events.Options{
		Stream: cfg.NATS.Stream, SubjectPrefix: cfg.NATS.SubjectPrefix, MaxChanges: cfg.Events.MaxChanges,
		Instance: cat.InstanceID(), Log: log, OnPublish: func(events.CloudEvent) { sp.events++ },
	})
	if err != nil {
		return err
	}
	if err := pub.EnsureStream(ctx); err != nil {
		return fmt.Errorf("publish: ensure stream %s: %w", cfg.NATS.Stream, err)
	}
	if err := pub.Follow(ctx, cs, sp.done); err != nil {
		return fmt.Errorf("publish (the changes stay in the outbox for the next run): %w", err)
	}
	return nil
}

// bounded cancels ctx scanPublishTail after the scan has ended: while the
// scan runs, publishing waits for NATS as long as it takes.
func (sp *scanPublisher) bounded(ctx context.Context, cancel context.CancelFunc) {
	select {
	case <-sp.done:
	case <-ctx.Done():
		return
	}
	t := time.NewTimer(scanPublishTail)
	defer t.Stop()
	select {
	case <-t.C:
		cancel()
	case <-ctx.Done():
	}
}

// finish publishes what the scan left and reports how many events went out.
func (sp *scanPublisher) finish() error {
	if sp == nil {
		return nil
	}
	close(sp.done)
	err := <-sp.result
	sp.cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(sp.stdout, "published %d events\n", sp.events)
	return nil
}

// stop ends the publishing at once, after a failed scan: what was published
// is dropped from the outbox, the rest stays there for the next run.
func (sp *scanPublisher) stop() {
	if sp == nil {
		return
	}
	sp.cancel()
	close(sp.done)
	<-sp.result
}

// profileCPU writes a CPU profile to path until stop is called ("": none),
// so that bench/scan.sh can show where a scan's time goes.
func profileCPU(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
