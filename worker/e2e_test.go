package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

// awkward keys: spaces, '+', '%', unicode, nested prefixes.
var awkward = []string{
	"a b.jpg", "a+b.jpg", "100%.png", "a%2Fb.jpg", "ünï/café crème.png",
	"日本/画像 1.jpg", "emoji/😀.png", "deep/er/and/deeper/x.webp", "UPPER.JPG",
}

func testConfig(t testing.TB, natsURL string, src config.Source) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL = natsURL
	cfg.Catalog.Path = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Events.CoalesceWindow = 50 * time.Millisecond
	src.Schedule = "@every 1h" // tests trigger scans themselves
	if src.Provider == "local" && src.Settle == nil {
		// Tests write a file and scan at once; the settle rule has tests
		// of its own.
		src.Settle = new(time.Duration)
	}
	if src.Provider == "local" && src.Watch == nil {
		// These tests drive scans; the watch has tests of its own
		// (localwatch_test.go).
		src.Watch = new(bool)
	}
	cfg.Sources = []config.Source{src}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// orderedConsumer connects to natsURL and returns an ordered consumer of
// stream, waiting (20 s at most) for the worker to create the stream.
func orderedConsumer(tb testing.TB, natsURL, stream string, cc jetstream.OrderedConsumerConfig) jetstream.Consumer {
	tb.Helper()
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		cons, err := js.OrderedConsumer(ctx, stream, cc)
		if err == nil {
			return cons
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) || ctx.Err() != nil {
			tb.Fatalf("consumer: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the worker creates the stream at start
	}
}

// running is a worker running in the background.
type running struct {
	*worker.Worker
	cancel context.CancelFunc
	done   chan error
}

// start runs a worker on cfg until the test ends (or stop), with opts
// (Log and FlushTimeout are set here).
func start(t testing.TB, cfg *config.Config, opts ...worker.Options) *running {
	t.Helper()
	var o worker.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Log, o.FlushTimeout = quietLog(), 2*time.Second
	w, err := worker.New(context.Background(), cfg, o)
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Worker: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop within 30 s")
	}
	r.Close()
}

func (r *running) scan(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The start-up scan first: run after a manual one, it would report
	// what the test means the manual scan to find.
	for metric(t, r.HTTPAddr(), "syncer_scans_total", `source="`+id+`"`) < 1 {
		if ctx.Err() != nil {
			t.Fatalf("start-up scan of %s did not finish", id)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	for {
		_, err := r.Scan(ctx, id)
		if err == nil {
			return
		}
		// The start-up scan may still be running: wait for it.
		if !strings.Contains(err.Error(), "already running") || ctx.Err() != nil {
			t.Fatalf("scan %s: %v", id, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// drained waits until every committed change of every source is published.
func (r *running) drained(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pending := uint64(0)
		for _, s := range r.Sources() {
			st, err := s.Catalog.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			pending += st.Pending
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d changes still unpublished after 20 s", pending)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// subscriber reads a source's events from JetStream, from the start of the
// stream, in order.
type subscriber struct {
	t    *testing.T
	msgs chan jetstream.Msg
	seen []events.CloudEvent
}

func subscribe(t *testing.T, natsURL, stream, subject string) *subscriber {
	t.Helper()
	cons := orderedConsumer(t, natsURL, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	s := &subscriber{t: t, msgs: make(chan jetstream.Msg, 1024)}
	cc, err := cons.Consume(func(m jetstream.Msg) { s.msgs <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return s
}

// change is what a test expects: op and key.
type change struct{ Op, Key string }

func (c change) String() string { return c.Op + " " + c.Key }

// expect reads events until it has len(want) changes and checks they are
// exactly want, in order, and that sequence numbers are contiguous.
func (s *subscriber) expect(want ...change) {
	s.t.Helper()
	got := s.read(len(want), fmt.Sprint(want))
	if !slices.Equal(got, want) {
		s.t.Fatalf("changes:\n got %v\nwant %v", got, want)
	}
}

// read receives events until it has at least n changes and returns them,
// checking each event's headers and that sequence ranges are contiguous.
func (s *subscriber) read(n int, want string) []change {
	s.t.Helper()
	var got []change
	deadline := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case m := <-s.msgs:
			if ct := m.Headers().Get("Content-Type"); ct != events.ContentType {
				s.t.Errorf("Content-Type %q", ct)
			}
			if id := m.Headers().Get(jetstream.MsgIDHeader); id == "" {
				s.t.Error("no Nats-Msg-Id")
			}
			ev, err := events.Decode(m.Data())
			if err != nil {
				s.t.Fatal(err)
			}
			if k := len(s.seen); k > 0 && ev.Data.FirstSeq != s.seen[k-1].Data.LastSeq+1 {
				s.t.Errorf("event %s starts at seq %d after an event ending at %d", ev.ID, ev.Data.FirstSeq, s.seen[k-1].Data.LastSeq)
			}
			s.seen = append(s.seen, ev)
			for _, c := range ev.Data.Changes {
				got = append(got, change{c.Op, c.Key})
			}
		case <-deadline:
			s.t.Fatalf("timed out: got %v, want %s", got, want)
		}
	}
	return got
}

// none checks that no further event is in the stream for this subscriber:
// callers first wait until the worker's outbox is drained.
func (s *subscriber) none() {
	s.t.Helper()
	select {
	case m := <-s.msgs:
		ev, _ := events.Decode(m.Data())
		s.t.Fatalf("unexpected event %s: %+v", ev.ID, ev.Data.Changes)
	case <-time.After(100 * time.Millisecond): // a grace period for an event already in flight
	}
}

func sortedKeys(keys []string) []string {
	out := slices.Clone(keys)
	slices.Sort(out)
	return out
}

func added(keys ...string) []change {
	out := make([]change, len(keys))
	for i, k := range keys {
		out[i] = change{"added", k}
	}
	return out
}

func TestS3EndToEnd(t *testing.T) {
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "assets")
	for _, k := range awkward {
		s3.Put(t, "assets", k, []byte("v1 "+k), "image/png")
	}
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, s3.SourceConfig("cloud-images", "assets"))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.cloud-images")

	sub.expect(added(sortedKeys(awkward)...)...)
	first := sub.seen[0].Data.Changes[0]
	if first.Size == 0 || first.ETag == "" || first.LastModified == nil || first.DetectedBy != "scan" {
		t.Errorf("change lacks detail: %+v", first)
	}

	s3.Put(t, "assets", "a+b.jpg", []byte("v2, longer"), "image/jpeg")
	s3.Put(t, "assets", "ünï/café crème.png", []byte("v2"), "image/png")
	s3.Delete(t, "assets", "100%.png")
	s3.Delete(t, "assets", "emoji/😀.png")
	s3.Put(t, "assets", "new/ +%.gif", []byte("gif"), "image/gif")
	w.scan(t, "cloud-images")
	// A scan commits additions and modifications in key order as it
	// lists, and deletions once the listing is complete.
	sub.expect(
		change{"modified", "a+b.jpg"},
		change{"added", "new/ +%.gif"},
		change{"modified", "ünï/café crème.png"},
		change{"deleted", "100%.png"},
		change{"deleted", "emoji/😀.png"},
	)
	// Another scan without changes publishes nothing.
	w.scan(t, "cloud-images")
	w.drained(t)
	sub.none()
}

func TestLocalEndToEnd(t *testing.T) {
	root := t.TempDir()
	write := func(key, body string) {
		p := filepath.Join(root, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range awkward {
		write(k, "v1")
	}
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, config.Source{ID: "local-assets", Provider: "local", Path: root})
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.local-assets")
	sub.expect(added(sortedKeys(awkward)...)...)

	write("a b.jpg", "v2 is longer")
	if err := os.Remove(filepath.Join(root, "日本", "画像 1.jpg")); err != nil {
		t.Fatal(err)
	}
	write("deep/er/new.png", "new")
	w.scan(t, "local-assets")
	sub.expect(change{"modified", "a b.jpg"}, change{"added", "deep/er/new.png"}, change{"deleted", "日本/画像 1.jpg"})
	w.scan(t, "local-assets")
	w.drained(t)
	sub.none()
}

func TestRestartPublishesOnlyWhatChangedWhileDown(t *testing.T) {
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "bkt")
	for i := range 50 {
		s3.Put(t, "bkt", fmt.Sprintf("img/%03d.jpg", i), []byte("v1"), "image/jpeg")
	}
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, s3.SourceConfig("src", "bkt"))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.src")
	var all []string
	for i := range 50 {
		all = append(all, fmt.Sprintf("img/%03d.jpg", i))
	}
	sub.expect(added(all...)...)
	w.drained(t)
	w.stop(t)

	// While syncer is down.
	s3.Put(t, "bkt", "img/010.jpg", []byte("v2!"), "image/jpeg")
	s3.Delete(t, "bkt", "img/020.jpg")
	s3.Put(t, "bkt", "img/new.jpg", []byte("new"), "image/jpeg")

	w = start(t, cfg) // same catalog, same stream
	sub.expect(change{"modified", "img/010.jpg"}, change{"added", "img/new.jpg"}, change{"deleted", "img/020.jpg"})
	w.drained(t)
	sub.none()
}

func TestNATSDownThenBack(t *testing.T) {
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "bkt")
	s3.Put(t, "bkt", "a.jpg", []byte("a"), "")
	store := t.TempDir()
	n := testkit.StartNATS(t, store, 0)
	port := n.Port
	cfg := testConfig(t, n.URL, s3.SourceConfig("src", "bkt"))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.src")
	sub.expect(change{"added", "a.jpg"})
	w.drained(t)

	n.Shutdown()
	// Changes while NATS is down land in the outbox, in order.
	s3.Put(t, "bkt", "b.jpg", []byte("b"), "")
	w.scan(t, "src")
	s3.Put(t, "bkt", "a.jpg", []byte("a2"), "")
	w.scan(t, "src")
	s3.Delete(t, "bkt", "b.jpg")
	s3.Put(t, "bkt", "c.jpg", []byte("c"), "")
	w.scan(t, "src")
	st, err := w.Sources()[0].Catalog.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 4 {
		t.Fatalf("outbox holds %d changes while NATS is down, want 4", st.Pending)
	}

	testkit.StartNATS(t, store, port) // back, same port and store
	sub.expect(change{"added", "b.jpg"}, change{"modified", "a.jpg"}, change{"added", "c.jpg"}, change{"deleted", "b.jpg"})
	w.drained(t)
	sub.none()
}

func TestFailedListingPublishesNoDeletion(t *testing.T) {
	var failLists atomic.Bool
	s3 := testkit.StartS3(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			// The second page of every listing fails, as a flaky server
			// would: the SDK's retries see the same failure.
			if failLists.Load() && r.Method == http.MethodGet && r.URL.Query().Get("continuation-token") != "" {
				http.Error(rw, "<Error><Code>InternalError</Code><Message>injected</Message></Error>", http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(rw, r)
		})
	})
	s3.CreateBucket(t, "bkt")
	var keys []string
	for i := range 2500 { // three pages of 1000
		keys = append(keys, fmt.Sprintf("k/%05d", i))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(keys); i += 8 {
				s3.Put(t, "bkt", keys[i], []byte("x"), "")
			}
		}()
	}
	wg.Wait()
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, s3.SourceConfig("src", "bkt"))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.src")
	sub.expect(added(keys...)...)
	w.drained(t)

	// Delete objects on the first and the last page, add one, then fail
	// the listing at its second page.
	s3.Delete(t, "bkt", "k/00001")
	s3.Delete(t, "bkt", "k/02400")
	s3.Put(t, "bkt", "k/00001a", []byte("new"), "")
	failLists.Store(true)
	if _, err := w.Scan(context.Background(), "src"); err == nil {
		t.Fatal("scan with a failing page succeeded")
	}
	// What the first page showed is real and published; no deletion is.
	sub.expect(change{"added", "k/00001a"})
	w.drained(t)
	sub.none()

	failLists.Store(false)
	w.scan(t, "src")
	sub.expect(change{"deleted", "k/00001"}, change{"deleted", "k/02400"})
}

// With NATS unreachable the worker still serves health and readiness at
// once: a liveness probe must not kill it while the outbox holds its events,
// and NATS being away is no reason to take the webhooks out of the Service
// (they commit to the catalog), so /readyz is 200 and ?verbose says why.
func TestHealthWithoutNATS(t *testing.T) {
	cfg := testConfig(t, "nats://127.0.0.1:1", config.Source{ID: "local-assets", Provider: "local", Path: t.TempDir()})
	w := start(t, cfg)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get("http://" + w.HTTPAddr() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/healthz: %s", resp.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not served within 5 s without NATS: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
	resp, err := client.Get("http://" + w.HTTPAddr() + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "[-]nats not connected (informational)") ||
		!strings.HasSuffix(string(body), "readyz check passed\n") {
		t.Fatalf("/readyz?verbose: %s %s", resp.Status, body)
	}
}
