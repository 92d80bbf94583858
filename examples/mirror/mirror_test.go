package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/s3"
	"github.com/imgly/syncer/schedule"
	"github.com/imgly/syncer/worker"
)

// TestMirrorEqualsBucket runs the recipe "snapshot, then stream" against a
// running syncer while uploads, overwrites and deletes go on — some of them
// between the snapshot's pages — and checks the mirror ends equal to the
// bucket.
func TestMirrorEqualsBucket(t *testing.T) {
	s3srv := testkit.StartS3(t, nil)
	s3srv.CreateBucket(t, "lib")
	for i := range 300 {
		s3srv.Put(t, "lib", fmt.Sprintf("img/%04d.png", i), []byte("v0"), "image/png")
	}
	nsrv := testkit.StartNATS(t, t.TempDir(), 0)
	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL = nsrv.URL
	cfg.Catalog.Path = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Events.CoalesceWindow = 5 * time.Millisecond
	src := s3srv.SourceConfig("lib", "lib")
	cfg.Sources = []config.Source{src}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := worker.New(context.Background(), cfg, worker.Options{Log: log, FlushTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; w.Close() })
	// Run scans every source at start; the first scan asked for here may
	// find that one still running, and waits for it to end.
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, err := w.Scan(ctx, "lib")
		if err == nil {
			break
		}
		if !errors.Is(err, schedule.ErrBusy) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // polling the scan lock, with a deadline
	}

	// The writer: one random upload, overwrite or delete, then a scan that
	// commits and publishes it.
	var wmu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	version := 0
	write := func() {
		wmu.Lock()
		defer wmu.Unlock()
		version++
		key := fmt.Sprintf("img/%04d.png", rng.IntN(400))
		if rng.IntN(3) == 0 {
			s3srv.Delete(t, "lib", key)
		} else {
			s3srv.Put(t, "lib", key, []byte(fmt.Sprintf("v%d-%s", version, key)), "image/png")
		}
		if _, err := w.Scan(ctx, "lib"); err != nil && ctx.Err() == nil {
			t.Errorf("scan: %v", err)
		}
	}

	// Every snapshot page is preceded by a write: the snapshot is taken
	// while the source changes under it, deterministically.
	pages := 0
	client := &http.Client{Timeout: 30 * time.Second, Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		pages++
		write()
		return http.DefaultTransport.RoundTrip(r)
	})}
	m := New(Config{API: "http://" + w.HTTPAddr(), Source: "lib", NATS: nsrv.URL, Stream: cfg.NATS.Stream,
		Subject: events.Subject(cfg.NATS.SubjectPrefix, "lib"), PerPage: 20, Log: log, HTTP: client})
	mctx, mstop := context.WithCancel(ctx)
	mdone := make(chan error, 1)
	go func() { mdone <- m.Run(mctx) }()

	waitFor(t, "the snapshot", func() bool { return m.Seq() > 0 })
	if pages < 10 {
		t.Fatalf("the snapshot took %d pages; the test wants writes between many", pages)
	}
	// Then the stream: more writes after the snapshot.
	for range 100 {
		write()
	}
	last := manifestSeq(t, "http://"+w.HTTPAddr()+"/sources/lib")
	waitFor(t, fmt.Sprintf("the mirror to reach seq %d", last), func() bool { return m.Seq() >= last })
	mstop()
	if err := <-mdone; err != nil {
		t.Fatal(err)
	}

	// The bucket as S3 lists it.
	p, err := s3.New(ctx, s3.Config(s3srv.ProviderConfig("lib")))
	if err != nil {
		t.Fatal(err)
	}
	bucket := map[string]int64{}
	err = providers.Walk(ctx, p, "", func(page providers.Page) error {
		for _, o := range page.Objects {
			bucket[o.Key] = o.Size
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := m.Objects()
	for k, size := range bucket {
		if o, ok := got[k]; !ok || o.Size != size {
			t.Errorf("%s: bucket has size %d, mirror %+v (present %v)", k, size, o, ok)
		}
	}
	for k := range got {
		if _, ok := bucket[k]; !ok {
			t.Errorf("%s: in the mirror, not in the bucket", k)
		}
	}
	t.Logf("%d objects mirrored through seq %d; %d snapshot pages with a write before each", len(got), m.Seq(), pages)
}

// TestApplyDetectsGap: an event that starts after the mirror's sequence
// plus one means the stream lost changes; the mirror must start over.
func TestApplyDetectsGap(t *testing.T) {
	m := New(Config{})
	m.seq = 10
	if err := m.Apply(events.ContentsChanged{FirstSeq: 5, LastSeq: 10}); err != nil {
		t.Fatalf("an event the snapshot holds: %v", err)
	}
	ch := events.ContentsChanged{FirstSeq: 8, LastSeq: 12, Changes: []events.Change{
		{Seq: 9, Op: "added", Key: "old", Size: 1}, {Seq: 11, Op: "added", Key: "new", Size: 2}}}
	if err := m.Apply(ch); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.objects["old"]; ok || m.objects["new"].Size != 2 || m.Seq() != 12 {
		t.Fatalf("straddling event: objects %v seq %d", m.objects, m.Seq())
	}
	if err := m.Apply(events.ContentsChanged{FirstSeq: 14, LastSeq: 15}); !errors.Is(err, errGap) {
		t.Fatalf("gap 12 → 14: %v, want errGap", err)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func manifestSeq(t *testing.T, url string) uint64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Data struct{ Seq uint64 } }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Data.Seq
}

// waitFor polls cond until it holds or a minute passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
