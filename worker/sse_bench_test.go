package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
)

// The editor's path, server side: an object PUT to the S3 emulator, the
// S3 webhook notification POSTed right after it (as S3 sends it), committed,
// published, and received by an SSE client on GET /sources/{id}/events.
// Window 0 (no coalescing) is the baseline of the same run.
//
//	go test -run=NONE -bench=SSE -benchtime=1x ./worker/     (SSE_UPLOADS=100 by default)
func BenchmarkSSELatency(b *testing.B) {
	for _, window := range []time.Duration{0, 250 * time.Millisecond} {
		b.Run(fmt.Sprintf("window=%s", window), func(b *testing.B) {
			for range b.N {
				benchSSE(b, window, false)
			}
		})
	}
}

// BenchmarkSSEBurst: bursts of SSE_UPLOADS uploads, each PUT and its
// notification sent by 16 concurrent clients as fast as they go; reports
// the events (editor refreshes) per burst.
func BenchmarkSSEBurst(b *testing.B) {
	for _, window := range []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond} {
		b.Run(fmt.Sprintf("window=%s", window), func(b *testing.B) {
			for range b.N {
				benchSSE(b, window, true)
			}
		})
	}
}

func benchSSE(b *testing.B, window time.Duration, burst bool) {
	uploads := 100
	if v, err := strconv.Atoi(os.Getenv("SSE_UPLOADS")); err == nil && v > 0 {
		uploads = v
	}
	s3 := testkit.StartS3(b, nil)
	s3.CreateBucket(b, "bench")
	s3.Put(b, "bench", "k/seed.jpg", []byte("x"), "image/jpeg")
	nt := testkit.StartNATS(b, b.TempDir(), 0)
	src := s3.SourceConfig("bench", "bench")
	src.Prefix = "k/"
	src.Notifications.Webhook = &config.Webhook{Token: "secret"}
	cfg := testConfig(b, nt.URL, src)
	cfg.Events.CoalesceWindow = window
	w := start(b, cfg)
	drainedB(b, w)
	sse := openSSE(b, "http://"+w.HTTPAddr()+"/sources/bench/events")
	hook := "http://" + w.HTTPAddr() + "/webhooks/s3/bench"
	upload := func(key string, i int) {
		s3.Put(b, "bench", key, []byte(benchBody), "image/jpeg")
		req, _ := http.NewRequest(http.MethodPost, hook, bytes.NewReader(recordBody("bench", key, i)))
		req.Header.Set("Authorization", "Bearer secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("webhook: %s", resp.Status)
		}
	}
	b.ResetTimer()
	if burst {
		benchBursts(b, sse, uploads, upload)
	} else {
		var lat []time.Duration
		time.Sleep(time.Second) // the start-up scan's event is a window behind: each upload is isolated
		for i := range uploads {
			key := fmt.Sprintf("k/%06d.jpg", i)
			t0 := time.Now()
			upload(key, i)
			lat = append(lat, sse.await(b, key).Sub(t0))
			time.Sleep(time.Until(t0.Add(time.Second))) // pacing the uploads 1 s apart, not synchronisation
		}
		slices.Sort(lat)
		b.ReportMetric(msOf(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(msOf(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(msOf(lat[len(lat)-1]), "max-ms")
	}
	b.StopTimer()
	w.stop(b)
}

// benchBursts sends 5 bursts, a quiet second apart, and reports the events
// each took until all its keys had arrived.
func benchBursts(b *testing.B, sse *sseClient, uploads int, upload func(string, int)) {
	var counts []float64
	var spans []time.Duration
	for round := range 5 {
		time.Sleep(time.Second) // quiet before the burst: the leading edge's case
		sse.events()            // forget what came before
		start := time.Now()
		var wg sync.WaitGroup
		for c := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; i < uploads; i += 16 {
					n := round*uploads + i
					upload(fmt.Sprintf("k/b%06d.jpg", n), n)
				}
			}()
		}
		wg.Wait()
		sent := time.Since(start)
		for i := range uploads {
			sse.await(b, fmt.Sprintf("k/b%06d.jpg", round*uploads+i))
		}
		spans = append(spans, sent)
		counts = append(counts, float64(sse.events()))
	}
	slices.Sort(counts)
	slices.Sort(spans)
	b.ReportMetric(counts[len(counts)/2], "refreshes-median")
	b.ReportMetric(counts[len(counts)-1], "refreshes-max")
	b.ReportMetric(msOf(spans[len(spans)/2]), "burst-ms")
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sseClient reads one SSE stream and notes when each key arrived.
type sseClient struct {
	mu      sync.Mutex
	arrived map[string]time.Time
	n       int // events since the last events()
	wake    chan struct{}
}

func openSSE(tb testing.TB, url string) *sseClient {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %v %v", url, resp, err)
	}
	c := &sseClient{arrived: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			now := time.Now()
			ev, err := events.Decode([]byte(data))
			if err != nil {
				continue
			}
			c.mu.Lock()
			c.n++
			for _, ch := range ev.Data.Changes {
				c.arrived[ch.Key] = now
			}
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

// await returns when key arrived, waiting 30 s at most.
func (c *sseClient) await(tb testing.TB, key string) time.Time {
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		at, ok := c.arrived[key]
		c.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-c.wake:
		case <-deadline:
			tb.Fatalf("%s did not arrive over SSE within 30 s", key)
		}
	}
}

// events returns the events received since the last call.
func (c *sseClient) events() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}
