package assetsource_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

// TestConsistencyWithEvents: an editor that receives the event with lastSeq
// N and queries at once sees at least N, and the objects the event names —
// checked for every event while uploads keep coming.
func TestConsistencyWithEvents(t *testing.T) {
	rounds := 1000
	if testing.Short() {
		rounds = 100
	}
	root := t.TempDir()
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL = n.URL
	cfg.Catalog.Path = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Events.CoalesceWindow = time.Millisecond
	cfg.Sources = []config.Source{{ID: "live", Provider: "local", Path: root, Schedule: "@every 1h", Settle: new(time.Duration)}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	evs := make(chan events.CloudEvent, 4096)
	w, err := worker.New(context.Background(), cfg, worker.Options{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), FlushTimeout: 2 * time.Second,
		OnPublish: func(e events.CloudEvent) { evs <- e },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		w.Close()
	})
	base := "http://" + w.HTTPAddr()

	// The uploader: one upload (a new file, later a new version of one of
	// 200), one scan, again and again; the directory stays small so that
	// the test measures the API, not the scan.
	upCtx, stopUp := context.WithCancel(ctx)
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		for i := 0; upCtx.Err() == nil; i++ {
			p := filepath.Join(root, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%03d.png", i%200))
			os.MkdirAll(filepath.Dir(p), 0o755)             //nolint:errcheck
			os.WriteFile(p, []byte(strconv.Itoa(i)), 0o644) //nolint:errcheck
			w.Scan(upCtx, "live")                           //nolint:errcheck // a cancelled scan at the end
		}
	}()
	defer func() { stopUp(); <-upDone }()

	deadline := time.After(5 * time.Minute)
	for checked := 0; checked < rounds; {
		var e events.CloudEvent
		select {
		case e = <-evs:
		case <-deadline:
			t.Fatalf("only %d events in 5 minutes", checked)
		}
		r := do(t, "GET", base+"/sources/live/assets?perPage=1")
		seq, err := strconv.ParseUint(r.header.Get("X-Syncer-Seq"), 10, 64)
		if err != nil || seq < e.Data.LastSeq {
			t.Fatalf("event %d: lastSeq %d, query answered at seq %q", checked, e.Data.LastSeq, r.header.Get("X-Syncer-Seq"))
		}
		if p := decode[assetsource.Page](t, r); p.Seq != seq {
			t.Fatalf("data.seq %d, header %d", p.Seq, seq)
		}
		for _, c := range e.Data.Changes {
			if c.Op == "deleted" {
				continue
			}
			must(t, do(t, "GET", base+"/sources/live/assets/"+assetsource.AssetID(c.Key)), 200)
		}
		checked++
	}
}
