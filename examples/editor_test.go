package examples_test

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/livetest"
)

// chromium is Debian's browser, which scripts/test.sh installs.
func chromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("/usr/bin/chromium is absent: apt-get install chromium (scripts/test.sh does) to run the browser test")
	}
}

// TestEditorInBrowser: examples/editor in headless chromium, offline, sees
// an upload to the bucket appear and a delete disappear, over SSE (through
// serve.mjs's proxy) and over NATS WebSocket.
func TestEditorInBrowser(t *testing.T) {
	chromium(t)
	node := livetest.Node(t, "playwright-core", "@cesdk/engine", "esbuild", "@nats-io/nats-core")
	for _, transport := range []string{"sse", "nats"} {
		t.Run(transport, func(t *testing.T) {
			s := livetest.Start(t, livetest.Options{Sources: []string{"media"}})
			cmd := exec.Command(node, "editor/test/browser.mjs")
			cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SOURCE=media", "TRANSPORT="+transport, "NATS_URL="+s.WSURL)
			res := s.Run(t, 3*time.Minute, cmd)
			t.Logf("browser over %s: %v", transport, res)
		})
	}
	// The README's walk-through: a local source like the embedded default's
	// ./assets, its files served by syncer through serve.mjs's proxy.
	t.Run("local", func(t *testing.T) {
		s := livetest.Start(t, livetest.Options{Local: []string{"assets"}})
		cmd := exec.Command(node, "editor/test/browser.mjs")
		cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SOURCE=assets")
		res := s.Run(t, 3*time.Minute, cmd)
		t.Logf("browser, local source: %v", res)
	})
}

// TestBrowserLatency is the browser benchmark of docs/benchmarks.md: bucket
// PUT (gofakes3, webhook) → onAssetSourceUpdated in headless chromium, for
// SSE and NATS WebSocket, against a Go NATS subscriber's PUT → event in the
// same run as the baseline. About 4 minutes, so not in the default run:
//
//	SYNCER_BENCH_BROWSER=1 go test -run TestBrowserLatency -v -timeout 30m ./examples/
//
// N, SPACING_MS and BURST (env) change the uploads, their spacing and the burst.
func TestBrowserLatency(t *testing.T) {
	if os.Getenv("SYNCER_BENCH_BROWSER") == "" {
		t.Skip("a benchmark: SYNCER_BENCH_BROWSER=1 go test -run TestBrowserLatency -v -timeout 30m ./examples/")
	}
	chromium(t)
	node := livetest.Node(t, "playwright-core", "@cesdk/engine", "esbuild", "@nats-io/nats-core")
	for _, transport := range []string{"sse", "nats"} {
		t.Run(transport, func(t *testing.T) {
			s := livetest.Start(t, livetest.Options{
				Sources:   []string{"media"},
				Configure: func(c *config.Config) { c.HTTP.CORS.AllowedOrigins = []string{"*"} },
			})
			arrived := subscribeArrivals(t, s.NATS.URL, "syncer.changed.media")
			cmd := exec.Command(node, "editor/test/latency.mjs")
			cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SOURCE=media", "TRANSPORT="+transport, "NATS_URL="+s.WSURL)
			res := s.Run(t, 25*time.Minute, cmd)
			var out struct {
				Uploads []struct {
					Key     string  `json:"key"`
					T0      int64   `json:"t0"`
					Browser float64 `json:"browser"`
				} `json:"uploads"`
				Burst       int `json:"burst"`
				BurstEvents int `json:"burstEvents"`
			}
			b, _ := json.Marshal(res)
			if err := json.Unmarshal(b, &out); err != nil || len(out.Uploads) == 0 {
				t.Fatalf("latency.mjs result: %v %s", err, b)
			}
			var browser, baseline []float64
			for _, u := range out.Uploads {
				browser = append(browser, u.Browser)
				at, ok := arrived(u.Key)
				if !ok {
					t.Fatalf("the Go subscriber never saw %s", u.Key)
				}
				baseline = append(baseline, float64(at.UnixMilli()-u.T0))
			}
			bp50, bp99 := percentile(browser, 0.50), percentile(browser, 0.99)
			np50, np99 := percentile(baseline, 0.50), percentile(baseline, 0.99)
			t.Logf("%s: %d uploads, PUT → onAssetSourceUpdated in chromium p50 %.0f ms, p99 %.0f ms, max %.0f ms; "+
				"PUT → NATS event (Go subscriber, baseline) p50 %.0f ms, p99 %.0f ms; browser/baseline p50 %.2f×, p99 %.2f×; "+
				"burst of %d uploads: %d events",
				transport, len(browser), bp50, bp99, percentile(browser, 1), np50, np99, bp50/np50, bp99/np99,
				out.Burst, out.BurstEvents)
		})
	}
}

// subscribeArrivals records when each key's first event reached a plain
// NATS subscriber.
func subscribeArrivals(t *testing.T, url, subject string) func(key string) (time.Time, bool) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	at := map[string]time.Time{}
	_, err = nc.Subscribe(subject, func(m *nats.Msg) {
		now := time.Now()
		var ev struct {
			Data struct {
				Changes []struct {
					Key string `json:"key"`
				} `json:"changes"`
			} `json:"data"`
		}
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, c := range ev.Data.Changes {
			if _, seen := at[c.Key]; !seen {
				at[c.Key] = now
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(key string) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		v, ok := at[key]
		return v, ok
	}
}

// percentile is the nearest-rank q-quantile of v.
func percentile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
