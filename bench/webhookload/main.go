// Command webhookload is the load client of bench/webhook.sh: from a process
// of its own, it POSTs S3 ObjectCreated notifications to a syncer's webhook
// at a fixed rate and reads the source's JetStream stream for the events
// that carry them.
//
// For each notification it measures, from the time it was due at the offered
// rate (not when a sender got to it: with every sender waiting on a slow
// answer, the late ones would otherwise not count their wait):
//   - due → stored: to the time JetStream stored the event holding the
//     change (the message's stream timestamp, on the same clock: the server
//     acks the publisher right after storing it, so this is receipt →
//     JetStream ack plus the HTTP request's way in);
//   - due → 200: the webhook answers once the change is committed to the
//     catalog, so this is the commit plus one HTTP round trip.
//
// It also counts the notifications that were sent more than 10 ms late.
//
// The stream is read with an ordered consumer from its start, so a reader
// that falls behind (a million-object import is a burst of events) does not
// move the timestamps.
//
// With -import N it also follows a first import of N objects on the same
// stream (every change whose key is outside -prefix), reports when its first
// and last events were stored after -t0 (syncer's start), splits the
// notifications into those sent during the import and after its last event,
// and keeps sending for -after once the import is done.
//
//	webhookload -webhook http://127.0.0.1:8080/webhooks/s3/bench -token T -nats nats://127.0.0.1:4222 \
//	    -subject syncer.changed.bench -rate 2000 -duration 20s
package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type options struct {
	webhook, token, natsURL, subject, bucket, prefix string
	rate, senders, importN                           int
	duration, after, drain, timeout                  time.Duration
	t0                                               time.Time
}

func main() {
	var o options
	var t0 int64
	flag.StringVar(&o.webhook, "webhook", "", "the source's webhook URL (…/webhooks/s3/<source>)")
	flag.StringVar(&o.token, "token", "", "the webhook's bearer token")
	flag.StringVar(&o.natsURL, "nats", nats.DefaultURL, "the NATS server holding the stream")
	flag.StringVar(&o.subject, "subject", "syncer.changed.bench", "the source's event subject")
	flag.StringVar(&o.bucket, "bucket", "bench", "the bucket named in the notifications")
	flag.StringVar(&o.prefix, "prefix", "webhookload/", "key prefix of the notified objects")
	flag.IntVar(&o.rate, "rate", 200, "notifications per second offered")
	flag.IntVar(&o.senders, "senders", 256, "concurrent HTTP senders (enough that none is due while all wait)")
	flag.IntVar(&o.importN, "import", 0, "objects of a first import to follow (0: none)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send (at least, with -import)")
	flag.DurationVar(&o.after, "after", 10*time.Second, "with -import: how long to go on sending after its last event")
	flag.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait for the last events after sending")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	flag.Int64Var(&t0, "t0", 0, "syncer's start, Unix nanoseconds (default: this process's start)")
	flag.Parse()
	o.t0 = time.Now()
	if t0 > 0 {
		o.t0 = time.Unix(0, t0)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "webhookload:", err)
		os.Exit(1)
	}
}

// note is one notification's timeline.
type note struct {
	due, sent, answered, arrived time.Time
	status                       int
}

// tracker holds what the senders and the subscriber observed.
type tracker struct {
	mu     sync.Mutex
	notes  []note
	prefix string
	// The import's changes seen on the subject, and when its first and
	// last arrived.
	imported            int
	importN             int
	firstImp, lastImp   time.Time
	importDone          chan struct{}
	arrivedN, foreignN  int
	decodeErr, unknownN int
}

func run(o options) error {
	if o.webhook == "" || o.rate <= 0 {
		return errors.New("-webhook and a positive -rate are required")
	}
	if _, err := url.Parse(o.webhook); err != nil {
		return fmt.Errorf("-webhook: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	tr := &tracker{prefix: o.prefix, importN: o.importN, importDone: make(chan struct{})}
	if o.importN == 0 {
		close(tr.importDone)
	}
	// syncer may still be starting: its embedded server and stream appear
	// within a few seconds.
	nc, err := nats.Connect(o.natsURL, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	cc, err := consume(ctx, nc, o.subject, tr)
	if err != nil {
		return err
	}
	defer cc.Stop()
	if err := waitHealthy(ctx, o.webhook); err != nil {
		return err
	}
	start := time.Now()
	n, stoppedAt := send(ctx, o, tr)
	tr.waitArrivals(ctx, n, o.drain)
	report(o, tr, start, stoppedAt)
	return ctx.Err()
}

// send paces notifications at o.rate until the run is over and returns how
// many it sent and when it stopped.
func send(ctx context.Context, o options, tr *tracker) (int, time.Time) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.senders}}
	jobs := make(chan int, 4*o.senders)
	var wg sync.WaitGroup
	for range o.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				tr.post(client, o, i)
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(o.rate)
	var stop time.Time // set once the import is done: sending ends o.after later
	i := 0
	for ; ctx.Err() == nil; i++ {
		now := time.Now()
		if stop.IsZero() {
			select {
			case <-tr.importDone:
				stop = start.Add(o.duration)
				if o.importN > 0 && now.Add(o.after).After(stop) {
					stop = now.Add(o.after)
				}
			default:
			}
		}
		if !stop.IsZero() && !now.Before(stop) {
			break
		}
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d) // pacing the load, not synchronisation
		}
		tr.mu.Lock()
		tr.notes = append(tr.notes, note{due: due})
		tr.mu.Unlock()
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return i, time.Now()
}

// post sends notification i.
func (tr *tracker) post(client *http.Client, o options, i int) {
	req, err := http.NewRequest(http.MethodPost, o.webhook, bytes.NewReader(body(o.bucket, o.prefix, i)))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	t := time.Now()
	tr.mu.Lock()
	tr.notes[i].sent = t
	tr.mu.Unlock()
	resp, err := client.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		resp.Body.Close()
	}
	tr.mu.Lock()
	tr.notes[i].answered, tr.notes[i].status = time.Now(), status
	tr.mu.Unlock()
}

var etag = func() string { s := md5.Sum([]byte("webhookload")); return hex.EncodeToString(s[:]) }()

// body is notification i: one S3 ObjectCreated:Put record, timed now so that
// syncer applies it as it is (an old one would be checked with a HEAD).
func body(bucket, prefix string, i int) []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","eventTime":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","s3":{"bucket":{"name":`...)
	b = strconv.AppendQuote(b, bucket)
	b = append(b, `},"object":{"key":`...)
	b = strconv.AppendQuote(b, url.QueryEscape(key(prefix, i)))
	b = fmt.Appendf(b, `,"size":11,"eTag":"%s","sequencer":"%016X"}}}]}`, etag, i+1)
	return b
}

func key(prefix string, i int) string { return fmt.Sprintf("%s%09d.jpg", prefix, i) }

// event is the part of a syncer CloudEvent read here.
type event struct {
	Data struct {
		Changes []struct {
			Op  string `json:"op"`
			Key string `json:"key"`
		} `json:"changes"`
	} `json:"data"`
}

// consume reads the stream holding subject from its start.
func consume(ctx context.Context, nc *nats.Conn, subject string, tr *tracker) (jetstream.ConsumeContext, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var stream string
	for {
		if stream, err = js.StreamNameBySubject(ctx, subject); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("find the stream of %s: %w", subject, err)
		case <-time.After(50 * time.Millisecond): // polling for syncer to create it
		}
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer on %s: %w", stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			tr.mu.Lock()
			tr.decodeErr++
			tr.mu.Unlock()
			return
		}
		tr.onEvent(m.Data(), md.Timestamp)
	})
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return cc, nil
}

// waitHealthy waits until the webhook's server answers /healthz.
func waitHealthy(ctx context.Context, webhook string) error {
	u, _ := url.Parse(webhook)
	u.Path, u.RawQuery = "/healthz", ""
	for {
		resp, err := http.Get(u.String())
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never answered: %v", u, err)
		case <-time.After(50 * time.Millisecond): // polling for syncer's listener
		}
	}
}

// onEvent notes when each change an event carries was stored.
func (tr *tracker) onEvent(data []byte, stored time.Time) {
	var ev event
	err := json.Unmarshal(data, &ev)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if err != nil {
		tr.decodeErr++
		return
	}
	for _, c := range ev.Data.Changes {
		rest, ok := strings.CutPrefix(c.Key, tr.prefix)
		if !ok {
			tr.importChange(c.Op, stored)
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(rest, ".jpg"))
		if c.Op == "deleted" {
			continue // the import's end deletes what its listing did not see
		}
		if err != nil || i < 0 || i >= len(tr.notes) || !tr.notes[i].arrived.IsZero() {
			tr.unknownN++
			continue
		}
		tr.notes[i].arrived = stored
		tr.arrivedN++
	}
}

// importChange counts one change of the import; the caller holds tr.mu.
func (tr *tracker) importChange(op string, now time.Time) {
	if op != "added" || tr.importN == 0 {
		tr.foreignN++
		return
	}
	if tr.imported == 0 {
		tr.firstImp = now
	}
	tr.imported++
	tr.lastImp = now
	if tr.imported == tr.importN {
		close(tr.importDone)
	}
}

// waitArrivals waits until n notifications have arrived, for drain at most.
func (tr *tracker) waitArrivals(ctx context.Context, n int, drain time.Duration) {
	deadline := time.Now().Add(drain)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		tr.mu.Lock()
		got := tr.arrivedN
		tr.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling counters the subscriber updates
	}
}

// report prints the import's timeline and the latencies by phase.
func report(o options, tr *tracker, start, stopped time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	fmt.Printf("offered %d/s for %.1f s by %d senders: %d notifications\n", o.rate, stopped.Sub(start).Seconds(), o.senders, len(tr.notes))
	if o.importN > 0 {
		if tr.imported < tr.importN {
			fmt.Printf("import: only %d of %d changes arrived\n", tr.imported, tr.importN)
		} else {
			fmt.Printf("import: %d changes; first stored %.2f s, last %.2f s after syncer's start\n",
				tr.imported, tr.firstImp.Sub(o.t0).Seconds(), tr.lastImp.Sub(o.t0).Seconds())
		}
	}
	var during, after []note
	for _, n := range tr.notes {
		if o.importN > 0 && (tr.imported < tr.importN || n.due.Before(tr.lastImp)) {
			during = append(during, n)
		} else {
			after = append(after, n)
		}
	}
	if o.importN > 0 {
		phase("during the import", during)
		phase("after the import", after)
	} else {
		phase("all", after)
	}
	if tr.decodeErr+tr.unknownN > 0 {
		fmt.Printf("undecodable events %d, changes of unknown keys %d\n", tr.decodeErr, tr.unknownN)
	}
}

// phase prints one group's latencies.
func phase(name string, notes []note) {
	var toAck, toOK []time.Duration
	failed, late := 0, 0
	var first, last time.Time
	for _, n := range notes {
		if n.status != http.StatusOK {
			failed++
		} else {
			toOK = append(toOK, n.answered.Sub(n.due))
		}
		if n.sent.Sub(n.due) > 10*time.Millisecond {
			late++
		}
		if first.IsZero() || n.due.Before(first) {
			first = n.due
		}
		if !n.arrived.IsZero() {
			toAck = append(toAck, n.arrived.Sub(n.due))
			if n.arrived.After(last) {
				last = n.arrived
			}
		}
	}
	sustained := 0.0
	if len(toAck) > 0 {
		sustained = float64(len(toAck)) / last.Sub(first).Seconds()
	}
	fmt.Printf("%s: %d sent (%d over 10 ms late), %d not answered 200, %d stored (%.0f/s sustained)\n",
		name, len(notes), late, failed, len(toAck), sustained)
	fmt.Printf("  due → stored in the stream (≈ ack): %s\n", quantiles(toAck))
	fmt.Printf("  due → webhook 200 (committed): %s\n", quantiles(toOK))
}

func quantiles(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms", ms(d[len(d)/2]), ms(d[len(d)*99/100]), ms(d[len(d)-1]))
}
