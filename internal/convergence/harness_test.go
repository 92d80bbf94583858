package convergence

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	s3prov "github.com/imgly/syncer/providers/s3"
	"github.com/imgly/syncer/schedule"
	"github.com/imgly/syncer/worker"
)

const (
	sourceID = "conv"
	bucket   = "conv"
	token    = "convergence-webhook-token"
	// deadline bounds every wait on an event of the system under test.
	deadline = 30 * time.Second
	// dupWindow is the stream's duplicate window, and every outage after a
	// crash lasts longer: "however long the outage", the publisher's
	// resume — not JetStream's deduplication of a retried id — must keep
	// the stream free of repeats.
	dupWindow = 100 * time.Millisecond
)

// syncLog is a log sink the worker's goroutines may write to after a
// subtest ended; the tail is printed when a seed fails.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 1<<20 { // keep the tail only
		tail := append([]byte(nil), l.buf.Bytes()[l.buf.Len()-1<<19:]...)
		l.buf.Reset()
		l.buf.Write(tail)
	}
	return l.buf.Write(p)
}

func (l *syncLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// live is a worker running in the background.
type live struct {
	*worker.Worker
	cancel context.CancelFunc
	done   chan error
}

// harness is one seed's world: a gofakes3 bucket behind a gate, an
// embedded NATS server that outlives the workers, and the worker (catalog
// directory and stream shared by every incarnation).
type harness struct {
	t    *testing.T
	s3   *testkit.S3
	gate *gate
	nats *testkit.NATS
	// proxy is the worker's way to NATS (the checker's is direct).
	proxy *natsProxy
	js    jetstream.JetStream
	cfg   *config.Config
	log   *syncLog
	w     *live
	// starts counts worker incarnations.
	starts int
	// crashedAt is when the last crash happened (zero after a start).
	crashedAt time.Time
	// zombies are crashed incarnations still winding down.
	zombies   sync.WaitGroup
	zombieErr atomic.Value // error
}

func newHarness(t *testing.T, pageSize int, window time.Duration, maxChanges int) *harness {
	h := &harness{t: t, gate: newGate(pageSize), log: &syncLog{}}
	h.s3 = testkit.StartS3(t, h.gate.wrap)
	h.s3.CreateBucket(t, bucket)
	h.nats = testkit.StartNATS(t, t.TempDir(), 0)
	nc, err := nats.Connect(h.nats.URL)
	if err != nil {
		t.Fatalf("checker connection: %v", err)
	}
	t.Cleanup(nc.Close)
	if h.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h.proxy = startProxy(t, h.nats.Server.Addr().String())
	cfg.NATS.URL = h.proxy.URL()
	cfg.Catalog.Path = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Events.CoalesceWindow = window
	cfg.Events.MaxChanges = maxChanges
	src := h.s3.SourceConfig(sourceID, bucket)
	src.Schedule = "@every 1h" // scans are the sequence's to decide
	src.Notifications.Webhook = &config.Webhook{Token: token}
	cfg.Sources = []config.Source{src}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	h.cfg = cfg
	// The stream as the publisher would create it, but with a short
	// duplicate window (see dupWindow).
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := h.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: cfg.NATS.Stream, Subjects: []string{cfg.NATS.SubjectPrefix + ".>"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
		MaxAge: 24 * time.Hour, Duplicates: dupWindow,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	t.Cleanup(func() {
		if h.w != nil {
			h.stop()
		}
		h.zombies.Wait()
		if err, _ := h.zombieErr.Load().(error); err != nil {
			t.Error(err)
		}
	})
	return h
}

// start runs a new worker incarnation on the shared catalog and stream and
// waits until its start-up scan is over, so that what the sequence does
// next does not race a scan the sequence did not ask for.
func (h *harness) start() {
	h.t.Helper()
	if !h.crashedAt.IsZero() {
		// The outage outlasts the duplicate window (see dupWindow).
		if d := dupWindow - time.Since(h.crashedAt); d > 0 {
			time.Sleep(d) // the length of the outage, not a synchronisation
		}
		h.crashedAt = time.Time{}
	}
	logger := slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := worker.New(context.Background(), h.cfg, worker.Options{Log: logger, FlushTimeout: 2 * time.Second})
	if err != nil {
		h.t.Fatalf("worker start %d: %v", h.starts+1, err)
	}
	h.starts++
	ctx, cancel := context.WithCancel(context.Background())
	l := &live{Worker: w, cancel: cancel, done: make(chan error, 1)}
	h.w = l
	go func() { l.done <- w.Run(ctx) }()
	h.waitScans(1)
}

// waitScans waits until the worker has finished n scans (any result).
func (h *harness) waitScans(n float64) {
	h.t.Helper()
	end := time.Now().Add(deadline)
	for h.metric("syncer_scans_total", `source="`+sourceID+`"`) < n {
		if time.Now().After(end) {
			h.t.Fatalf("start-up scan did not finish within %v", deadline)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// metric sums the samples of name on the worker's /metrics whose labels
// include every one of labels.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	resp, err := http.Get("http://" + h.w.HTTPAddr() + "/metrics")
	if err != nil {
		h.t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, _ := strings.Cut(line, " ")
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			h.t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// stop shuts the worker down the way SIGTERM does: scans stop, the
// publisher flushes the outbox.
func (h *harness) stop() {
	h.t.Helper()
	w := h.w
	h.w = nil
	w.cancel()
	h.waitRun(w)
	w.Close()
}

// crash ends the worker abruptly: its NATS connection and catalog are
// closed under it, so nothing it does afterwards reaches the stream or the
// disk — what a SIGKILL leaves, including publishes whose ack never came
// back and changes never published.
func (h *harness) crash() {
	h.t.Helper()
	h.reap(h.closeAbruptly())
}

// closeAbruptly closes the worker's connection and catalog under it and
// returns it, still running, for reap.
func (h *harness) closeAbruptly() *live {
	w := h.w
	h.w = nil
	w.Close()
	h.crashedAt = time.Now()
	return w
}

// waitPublished waits until the stream holds every change the catalog has
// committed.
func (h *harness) waitPublished() {
	h.t.Helper()
	end := time.Now().Add(deadline)
	for h.unpublished() > 0 {
		if time.Now().After(end) {
			h.t.Fatalf("committed changes not in the stream within %v", deadline)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, with a deadline
	}
}

// waitAcked waits until the running worker's publisher has had JetStream's
// ack for everything committed. waitPublished sees an event in the stream
// before its ack reaches the worker; freezing the NATS proxy in between
// would hold that ack back and the publisher with it.
func (h *harness) waitAcked() {
	h.t.Helper()
	end := time.Now().Add(deadline)
	for {
		st, err := h.w.Status(context.Background())
		if err != nil {
			h.t.Fatalf("status: %v", err)
		}
		if len(st.Sources) == 1 && st.Sources[0].PublishedSeq >= st.Sources[0].LastSeq {
			return
		}
		if time.Now().After(end) {
			h.t.Fatalf("published changes not acknowledged within %v: %+v", deadline, st.Sources)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, with a deadline
	}
}

// reap lets a crashed incarnation's goroutines end in the background (a
// publisher retrying an event on its closed connection gives up only at its
// flush timeout); they can no longer reach the catalog or the stream. The
// seed's cleanup waits for them.
func (h *harness) reap(w *live) {
	w.cancel()
	h.zombies.Add(1)
	go func() {
		defer h.zombies.Done()
		select {
		case err := <-w.done:
			// The crash closed the worker's NATS connection under it; Run
			// saying so is the worker doing its job.
			if err != nil && !errors.Is(err, worker.ErrNATSClosed) {
				h.zombieErr.Store(fmt.Errorf("crashed worker run: %w", err))
			}
		case <-time.After(deadline):
			h.zombieErr.Store(fmt.Errorf("a crashed worker did not stop within %v", deadline))
		}
	}()
}

func (h *harness) waitRun(w *live) {
	h.t.Helper()
	select {
	case err := <-w.done:
		if err != nil {
			h.t.Errorf("worker run: %v", err)
		}
	case <-time.After(deadline):
		h.t.Fatalf("worker did not stop within %v", deadline)
	}
}

// scanAsync starts a scan of the source and returns its outcome channel.
func (h *harness) scanAsync() <-chan error {
	ch := make(chan error, 1)
	w := h.w
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		for {
			_, err := w.Scan(ctx, sourceID)
			// The start-up scan counts itself done in the metrics just
			// before it lets go of the source.
			if errors.Is(err, schedule.ErrBusy) && ctx.Err() == nil {
				time.Sleep(time.Millisecond) // polling a condition, with a deadline
				continue
			}
			ch <- err
			return
		}
	}()
	return ch
}

// scanResult waits for a scan started by scanAsync.
func (h *harness) scanResult(ch <-chan error) error {
	h.t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(deadline):
		h.t.Fatalf("scan did not end within %v", deadline)
		return nil
	}
}

// unpublished is how many committed changes the stream does not hold yet.
func (h *harness) unpublished() uint64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	last, err := h.w.Sources()[0].Catalog.LastSeq(ctx)
	if err != nil {
		h.t.Fatalf("last seq: %v", err)
	}
	var published uint64
	stream, err := h.js.Stream(ctx, h.cfg.NATS.Stream)
	if err == nil {
		msg, err := stream.GetLastMsgForSubject(ctx, events.Subject(h.cfg.NATS.SubjectPrefix, sourceID))
		if err == nil {
			ev, err := events.Decode(msg.Data)
			if err != nil {
				h.t.Fatalf("stream's last event: %v", err)
			}
			published = ev.Data.LastSeq
		}
	}
	if published > last {
		return 0
	}
	return last - published
}

// --- the bucket ---

func (h *harness) put(key string, body []byte) {
	h.t.Helper()
	h.s3.Put(h.t, bucket, key, body, "")
}

func (h *harness) del(key string) {
	h.t.Helper()
	h.s3.Delete(h.t, bucket, key)
}

type object struct {
	Size int64
	ETag string
}

// listBucket lists the bucket with the SDK (through the gate, unarmed).
func (h *harness) listBucket() map[string]object {
	h.t.Helper()
	out := map[string]object{}
	p := awss3.NewListObjectsV2Paginator(h.s3.Client, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			h.t.Fatalf("list bucket: %v", err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = object{Size: aws.ToInt64(o.Size), ETag: strings.Trim(aws.ToString(o.ETag), `"`)}
		}
	}
	return out
}

// --- notifications, as S3 sends them ---

// record is one S3 event record (eventVersion 2.1) of an operation, with
// the operation's sequencer and time.
type record struct {
	op        string // "put" or "delete"
	key       string
	size      int
	etag      string
	sequencer string
	at        time.Time
}

func (r record) String() string {
	if r.op == "delete" {
		return fmt.Sprintf("delete %q seq=%s", r.key, r.sequencer)
	}
	return fmt.Sprintf("put %q size=%d etag=%.8s seq=%s", r.key, r.size, r.etag, r.sequencer)
}

func (r record) json() map[string]any {
	obj := map[string]any{"key": url.QueryEscape(r.key), "sequencer": r.sequencer}
	name := "ObjectRemoved:Delete"
	if r.op == "put" {
		name = "ObjectCreated:Put"
		obj["size"] = r.size
		obj["eTag"] = r.etag
	}
	return map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
		"eventTime": r.at.UTC().Format(time.RFC3339Nano), "eventName": name,
		"userIdentity":      map[string]any{"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
		"requestParameters": map[string]any{"sourceIPAddress": "127.0.0.1"},
		"responseElements":  map[string]any{"x-amz-request-id": "C3D13FE58DE4C810"},
		"s3": map[string]any{
			"s3SchemaVersion": "1.0", "configurationId": "syncer",
			"bucket": map[string]any{"name": bucket, "arn": "arn:aws:s3:::" + bucket},
			"object": obj,
		},
	}
}

// deliver POSTs records as one body to the worker's S3 webhook.
func (h *harness) deliver(recs ...record) {
	h.t.Helper()
	var rs []map[string]any
	for _, r := range recs {
		rs = append(rs, r.json())
	}
	body, err := json.Marshal(map[string]any{"Records": rs})
	if err != nil {
		h.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+h.w.HTTPAddr()+"/webhooks/s3/"+sourceID, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("webhook: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("webhook answered %d %s to %v", resp.StatusCode, bytes.TrimSpace(msg), recs)
	}
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// --- the checks ---

// catalogObjects reads the source's catalog from its directory (the worker
// is stopped) and its counters.
func (h *harness) catalogObjects() (map[string]object, catalog.Stats, string) {
	h.t.Helper()
	cat, err := catalog.Open(h.cfg.Catalog.Path)
	if err != nil {
		h.t.Fatalf("open catalog: %v", err)
	}
	defer cat.Close()
	src := cat.Source(sourceID, s3prov.KeyOrder)
	out := map[string]object{}
	ctx := context.Background()
	if err := src.Range(ctx, "", func(e catalog.Entry) error {
		out[e.Key] = object{Size: e.Size, ETag: e.ETag}
		return nil
	}); err != nil {
		h.t.Fatalf("catalog range: %v", err)
	}
	st, err := src.Stats(ctx)
	if err != nil {
		h.t.Fatalf("catalog stats: %v", err)
	}
	return out, st, cat.InstanceID()
}

// liveCatalog reads the running worker's catalog of the source.
func (h *harness) liveCatalog() map[string]object {
	h.t.Helper()
	out := map[string]object{}
	if err := h.w.Sources()[0].Catalog.Range(context.Background(), "", func(e catalog.Entry) error {
		out[e.Key] = object{Size: e.Size, ETag: e.ETag}
		return nil
	}); err != nil {
		h.t.Fatalf("catalog range: %v", err)
	}
	return out
}

// streamEvent is one message of the stream, decoded.
type streamEvent struct {
	streamSeq uint64
	msgID     string
	ev        events.CloudEvent
}

// readStream returns every message on the source's subject, in stream
// order.
func (h *harness) readStream() []streamEvent {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	stream, err := h.js.Stream(ctx, h.cfg.NATS.Stream)
	if err != nil {
		h.t.Fatalf("stream %s: %v", h.cfg.NATS.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	subject := events.Subject(h.cfg.NATS.SubjectPrefix, sourceID)
	var out []streamEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatalf("stream message %d: %v", seq, err)
		}
		if msg.Subject != subject {
			h.t.Errorf("stream message %d on subject %q, want %q", seq, msg.Subject, subject)
			continue
		}
		ev, err := events.Decode(msg.Data)
		if err != nil {
			h.t.Errorf("stream message %d: %v", seq, err)
			continue
		}
		out = append(out, streamEvent{streamSeq: seq, msgID: msg.Header.Get(jetstream.MsgIDHeader), ev: ev})
	}
	return out
}
