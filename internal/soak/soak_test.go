// Package soak runs a whole worker against a faulty S3 endpoint while a
// generator changes the bucket, and checks the stream holds exactly the
// real changes.
package soak

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

var (
	duration = flag.Duration("soak.duration", 15*time.Second, "how long the generator changes the bucket")
	seedFlag = flag.Uint64("soak.seed", 0, "seed of the generator and the fault proxy (0: from the clock)")
)

const (
	bucket   = "soak"
	sourceID = "soak"
	token    = "soak-t0ken"
	keyPool  = 40
)

// history is every state the generator gave each key: the ETags it was
// written with, and whether it was ever deleted.
type history struct {
	mu      sync.Mutex
	etags   map[string]map[string]bool
	deleted map[string]bool
}

func (h *history) put(key, etag string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.etags[key] == nil {
		h.etags[key] = map[string]bool{}
	}
	h.etags[key][etag] = true
}

func (h *history) del(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deleted[key] = true
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// TestSoak: scans on a short schedule and webhook notifications (some
// duplicated, delayed or lost) through a fault proxy injecting 500, 503,
// 429, resets, delays, stalls, truncated and non-listing 200 bodies, while
// a seeded generator puts, overwrites and deletes objects directly. After
// the generator stops and the faults are cleared, a clean scan; the stream
// replayed from empty must equal the bucket and announce no state the
// bucket never had. Replay a failure with -soak.seed=N.
func TestSoak(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak seed %d (replay: go test ./internal/soak -run TestSoak -soak.seed=%d -soak.duration=%v)", seed, seed, *duration)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d", seed)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))

	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, bucket)
	proxy := testkit.StartFaultProxy(t, s3.URL, seed)
	n := testkit.StartNATS(t, t.TempDir(), 0)

	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL = n.URL
	cfg.Catalog.Path = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Events.CoalesceWindow = 50 * time.Millisecond
	cfg.Notify.VerifyAfter = 200 * time.Millisecond // late notifications are stat'ed, through the proxy
	src := s3.SourceConfig(sourceID, bucket)
	src.S3.Endpoint = proxy.URL
	src.Schedule = "@every 300ms"
	src.RequestTimeout = time.Second // a stall fails the call, the scan, not the source
	src.Notifications.Webhook = &config.Webhook{Token: token}
	cfg.Sources = []config.Source{src}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() && os.Getenv("SOAK_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	w, err := worker.New(context.Background(), cfg, worker.Options{Log: log, FlushTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	runCtx, stopWorker := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- w.Run(runCtx) }()
	defer func() {
		stopWorker()
		select {
		case err := <-runDone:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop within 30 s")
		}
		w.Close()
	}()

	// Faults, each at its rate, on every request to the store (scans'
	// listings, notifications' stats).
	isList := func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Query().Has("list-type") }
	otherListing := []byte(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>other</Name><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`)
	// Rates are high: scans list once a second and the SDK retries a
	// failed call itself, so most faults must come in runs to fail a scan.
	proxy.Rate(0.08, nil, testkit.Status(500, "InternalError"))
	proxy.Rate(0.08, nil, testkit.Status(503, "SlowDown"))
	proxy.Rate(0.05, nil, testkit.Status(429, "TooManyRequests"))
	proxy.Rate(0.06, nil, testkit.Reset())
	proxy.Rate(0.08, nil, testkit.Delay(200*time.Millisecond))
	proxy.Rate(0.03, nil, testkit.Stall())
	proxy.Rate(0.06, isList, testkit.Truncate(60))
	proxy.Rate(0.05, isList, testkit.Body("application/xml", nil))
	proxy.Rate(0.05, isList, testkit.Body("text/html", []byte("<html><body>captive portal</body></html>")))
	proxy.Rate(0.05, isList, testkit.Body("application/xml", otherListing))
	// Stalls end now and then (else the client's request timeout ends
	// them): short stalls rather than dead connections.
	stallsDone := make(chan struct{})
	stopStalls := make(chan struct{})
	go func() {
		defer close(stallsDone)
		for {
			select {
			case <-stopStalls:
				return
			case <-time.After(700 * time.Millisecond):
				proxy.Release()
			}
		}
	}()

	hook := "http://" + w.HTTPAddr() + "/webhooks/s3/" + sourceID
	hist := &history{etags: map[string]map[string]bool{}, deleted: map[string]bool{}}
	var posts sync.WaitGroup
	notify := func(body string) {
		defer posts.Done()
		for range 3 { // as a sender retries a 5xx
			req, _ := http.NewRequest(http.MethodPost, hook, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}

	// The generator.
	ctx := context.Background()
	seq := uint64(0)
	present := map[string]bool{}
	ops := 0
	end := time.Now().Add(*duration)
	for time.Now().Before(end) {
		key := fmt.Sprintf("k/%02d.bin", rng.IntN(keyPool))
		seq++
		var body string
		if present[key] && rng.IntN(3) == 0 {
			if _, err := s3.Client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
				t.Fatalf("delete %s: %v", key, err)
			}
			hist.del(key)
			delete(present, key)
			body = record("ObjectRemoved:Delete", key, 0, "", seq)
		} else {
			// Unique per write (the seq first): an overwrite always
			// changes the ETag, so a modified to the same one is a duplicate.
			data := fmt.Appendf(nil, "%d:", seq)
			for range rng.IntN(64) {
				data = append(data, byte(rng.Uint32()))
			}
			etag := md5Hex(data)
			hist.put(key, etag) // before the put: a scan may see it at once
			if _, err := s3.Client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
				t.Fatalf("put %s: %v", key, err)
			}
			present[key] = true
			if rng.IntN(2) == 0 {
				body = record("ObjectCreated:Put", key, len(data), etag, seq)
			} else { // incomplete (as Ceph's can be): the router stats it
				body = record("ObjectCreated:Put", key, 0, "", seq)
			}
		}
		ops++
		switch r := rng.IntN(10); {
		case r < 2: // lost
		case r < 4: // duplicated
			posts.Add(2)
			go notify(body)
			go notify(body)
		case r < 5: // delayed, so reordered with later ones
			posts.Add(1)
			delay := time.Duration(rng.IntN(500)) * time.Millisecond
			go func() {
				time.Sleep(delay) //nolint:forbidigo // the delay is the fault
				notify(body)
			}()
		default:
			posts.Add(1)
			notify(body)
		}
		time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond) //nolint:forbidigo // pacing the generator
	}
	posts.Wait()
	close(stopStalls)
	<-stallsDone
	proxy.Clear()
	proxy.Release()
	t.Logf("generator: %d operations; proxy injected %d faults", ops, proxy.Injected())

	// A clean scan, retried while the scheduled one runs.
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		_, err := w.Scan(sctx, sourceID)
		if err == nil {
			break
		}
		if sctx.Err() != nil {
			t.Fatalf("final scan: %v", err)
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // polling, with a deadline
	}
	drained(t, w)

	bucketState := list(t, s3.Client)
	changes := replay(t, n.URL, cfg.NATS.Stream, cfg.NATS.SubjectPrefix+"."+sourceID)
	t.Logf("bucket %d objects; stream %d changes", len(bucketState), len(changes))

	// Replayed from empty, each change announcing a state the key had.
	state := map[string]string{}
	for _, c := range changes {
		switch c.Op {
		case "added", "modified":
			if !hist.etags[c.Key][c.ETag] {
				t.Errorf("seq %d: %s %s etag %q size %d (by %s): a state the generator never gave it",
					c.Seq, c.Op, c.Key, c.ETag, c.Size, c.DetectedBy)
			}
			prev, had := state[c.Key]
			if had != (c.Op == "modified") {
				t.Errorf("seq %d: %s %s, but the replayed state has it: %v", c.Seq, c.Op, c.Key, had)
			}
			if had && prev == c.ETag {
				t.Errorf("seq %d: modified %s to etag %s it already had (by %s): a duplicate", c.Seq, c.Key, c.ETag, c.DetectedBy)
			}
			state[c.Key] = c.ETag
		case "deleted":
			if !hist.deleted[c.Key] {
				t.Errorf("seq %d: deleted %s (by %s): the generator never deleted it", c.Seq, c.Key, c.DetectedBy)
			}
			if _, had := state[c.Key]; !had {
				t.Errorf("seq %d: deleted %s, absent in the replayed state", c.Seq, c.Key)
			}
			delete(state, c.Key)
		default:
			t.Errorf("seq %d: op %q", c.Seq, c.Op)
		}
	}
	for k, want := range bucketState {
		if got, ok := state[k]; !ok {
			t.Errorf("%s: in the bucket (etag %s), absent after replay", k, want)
		} else if got != want {
			t.Errorf("%s: bucket etag %s, replay etag %s", k, want, got)
		}
	}
	for k, got := range state {
		if _, ok := bucketState[k]; !ok {
			t.Errorf("%s: present after replay (etag %s), not in the bucket", k, got)
		}
	}
}

// replay reads every event of subject from the start of stream and returns
// their changes in order, checking sequence ranges are contiguous.
func replay(t *testing.T, natsURL, stream, subject string) []events.Change {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	var out []events.Change
	last := uint64(0)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatalf("consumer info: %v", err)
		}
		if info.NumPending == 0 && len(out) > 0 {
			return out
		}
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			ev, err := events.Decode(m.Data())
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if ev.Data.FirstSeq != last+1 {
				t.Errorf("event %s starts at seq %d after %d", ev.ID, ev.Data.FirstSeq, last)
			}
			last = ev.Data.LastSeq
			out = append(out, ev.Data.Changes...)
		}
		if got == 0 && ctx.Err() != nil {
			t.Fatal("timed out replaying the stream")
		}
	}
}

// record is an S3 event notification (AWS's format) of one change.
func record(name, key string, size int, etag string, seq uint64) string {
	obj := map[string]any{"key": url.QueryEscape(key), "sequencer": fmt.Sprintf("%016X", seq)}
	if size > 0 {
		obj["size"], obj["eTag"] = size, etag
	}
	b, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano), "eventName": name,
		"s3": map[string]any{"s3SchemaVersion": "1.0", "bucket": map[string]any{"name": bucket}, "object": obj},
	}}})
	return string(b)
}

func drained(t *testing.T, w *worker.Worker) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pending := uint64(0)
		for _, s := range w.Sources() {
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
			t.Fatalf("%d changes still unpublished after 30 s", pending)
		}
		time.Sleep(10 * time.Millisecond) //nolint:forbidigo // polling, with a deadline
	}
}

// list is the bucket, read directly: key -> ETag (unquoted).
func list(t *testing.T, c *awss3.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = strings.Trim(aws.ToString(o.ETag), `"`)
		}
	}
	return out
}
