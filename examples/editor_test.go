package examples_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
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
// serve.mjs's proxy) and over NATS WebSocket from syncer's own embedded
// nats-server (nats.websocket), and on the embedded default itself.
func TestEditorInBrowser(t *testing.T) {
	chromium(t)
	node := livetest.Node(t, "playwright-core", "@cesdk/engine", "esbuild", "@nats-io/nats-core")
	for _, transport := range []string{"sse", "nats"} {
		t.Run(transport, func(t *testing.T) {
			s := livetest.Start(t, livetest.Options{Sources: []string{"media"}, EmbeddedNATS: true})
			cmd := exec.Command(node, "editor/test/browser.mjs")
			cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SOURCE=media", "TRANSPORT="+transport, "NATS_URL="+s.WSURL)
			res := s.Run(t, 3*time.Minute, cmd)
			t.Logf("browser over %s: %v", transport, res)
		})
	}
	// The README's walk-through: `syncer run`'s embedded default (its
	// ./assets watched, its events settings), its files served by syncer
	// through serve.mjs's proxy.
	t.Run("local", func(t *testing.T) {
		s := livetest.Start(t, livetest.Options{Base: embeddedDefault(t)})
		cmd := exec.Command(node, "editor/test/browser.mjs")
		cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SOURCE=assets")
		res := s.Run(t, 3*time.Minute, cmd)
		t.Logf("browser, embedded default: %v", res)
	})
}

// embeddedDefault is the configuration `syncer run` uses without --config:
// the YAML of defaultConfig in cmd/syncer/commands.go, read from there so
// that the tests follow it when it changes.
func embeddedDefault(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("../cmd/syncer/commands.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)func defaultConfig\\(\\).*?\\[\\]byte\\(`(.*?)`\\)").FindSubmatch(src)
	if m == nil {
		t.Fatal("cmd/syncer/commands.go: no YAML in defaultConfig (the test's extractor needs updating)")
	}
	return m[1]
}

// latencyCase is one path of the browser benchmark.
type latencyCase struct {
	name, transport, source string
	opts                    livetest.Options
	senders                 int // concurrent senders of the second burst; 0: none
	// spacingMS, when set and SPACING_MS (env) is not, spaces the uploads
	// instead of latency.mjs's 1000 ms.
	spacingMS int
}

// TestBrowserLatency is the browser benchmark of docs/benchmarks.md: a
// change → onAssetSourceUpdated in headless chromium, against a Go NATS
// subscriber's change → event in the same run as the baseline, on four
// paths: bucket PUT (gofakes3, webhook) over SSE and over NATS WebSocket
// (syncer's embedded server), a file written into the embedded default's
// watched directory (SSE), and a PUT found only by the scheduled scan at
// a sub-second interval (SSE). About 12 minutes, so not in the default run:
//
//	SYNCER_BENCH_BROWSER=1 go test -run TestBrowserLatency -v -timeout 60m ./examples/
//
// N, SPACING_MS and BURST (env) change the uploads, their spacing and the
// bursts; BENCH_PATHS (sse,nats,local,poll) picks paths; POLL_SCHEDULE the
// poll path's schedule (default "@every 250ms").
func TestBrowserLatency(t *testing.T) {
	if os.Getenv("SYNCER_BENCH_BROWSER") == "" {
		t.Skip("a benchmark: SYNCER_BENCH_BROWSER=1 go test -run TestBrowserLatency -v -timeout 60m ./examples/")
	}
	chromium(t)
	node := livetest.Node(t, "playwright-core", "@cesdk/engine", "esbuild", "@nats-io/nats-core")
	cors := func(c *config.Config) { c.HTTP.CORS.AllowedOrigins = []string{"*"} }
	webhook := livetest.Options{Sources: []string{"media"}, EmbeddedNATS: true, Configure: cors}
	pollSchedule := cmp.Or(os.Getenv("POLL_SCHEDULE"), "@every 250ms")
	poll := livetest.Options{Sources: []string{"media"}, EmbeddedNATS: true, Configure: func(c *config.Config) {
		cors(c)
		// No notifications at all: only the scan finds a change. 250 ms
		// is the interval the README documents for the editors' target
		// (p50 ≈ interval/2 + scan); POLL_SCHEDULE (env) replaces it,
		// e.g. "@every 1s" for the rows recorded before sub-second
		// intervals.
		c.Sources[0].Notifications.Webhook = nil
		c.Sources[0].Schedule = pollSchedule
	}}
	cases := []latencyCase{
		{name: "sse", transport: "sse", source: "media", opts: webhook, senders: 16},
		{name: "nats", transport: "nats", source: "media", opts: webhook, senders: 16},
		{name: "local", transport: "sse", source: "assets", opts: livetest.Options{Base: embeddedDefault(t), Configure: cors}},
		// 1013 ms, not 1000: uploads a whole number of intervals apart
		// would all land at the same phase of the scan's ticks, and that
		// phase (chosen by when the run started) would set every latency.
		// 13 ms later each time, 100 uploads sweep 5 intervals of 250 ms.
		{name: "poll", transport: "sse", source: "media", opts: poll, spacingMS: 1013},
	}
	paths := os.Getenv("BENCH_PATHS")
	t.Logf("poll path schedule: %q", pollSchedule)
	for _, c := range cases {
		if paths != "" && !slices.Contains(strings.Split(paths, ","), c.name) {
			continue
		}
		t.Run(c.name, func(t *testing.T) { browserLatency(t, node, c) })
	}
}

// browserLatency runs editor/test/latency.mjs on one path and logs the
// percentiles and burst counts docs/benchmarks.md records.
func browserLatency(t *testing.T, node string, c latencyCase) {
	s := livetest.Start(t, c.opts)
	arrived := subscribeArrivals(t, s.NATSURL, "syncer.changed."+c.source)
	cmd := exec.Command(node, "editor/test/latency.mjs")
	cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SOURCE="+c.source, "TRANSPORT="+c.transport,
		"NATS_URL="+s.WSURL, fmt.Sprintf("BURST_SENDERS=%d", c.senders))
	if c.spacingMS > 0 && os.Getenv("SPACING_MS") == "" {
		cmd.Env = append(cmd.Env, fmt.Sprintf("SPACING_MS=%d", c.spacingMS))
	}
	res := s.Run(t, 25*time.Minute, cmd)
	type burst struct {
		Events int `json:"events"`
		MS     int `json:"ms"`
	}
	var out struct {
		Uploads []struct {
			Key     string  `json:"key"`
			T0      int64   `json:"t0"`
			Browser float64 `json:"browser"`
		} `json:"uploads"`
		Burst      int    `json:"burst"`
		Sequential burst  `json:"sequential"`
		Senders    int    `json:"senders"`
		Concurrent *burst `json:"concurrent"`
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
	bursts := fmt.Sprintf("burst of %d one after the other (%d ms): %d events", out.Burst, out.Sequential.MS, out.Sequential.Events)
	if out.Concurrent != nil {
		bursts += fmt.Sprintf("; from %d senders (%d ms): %d events", out.Senders, out.Concurrent.MS, out.Concurrent.Events)
	}
	t.Logf("%s (%s): %d uploads, change → onAssetSourceUpdated in chromium p50 %.0f ms, p99 %.0f ms, max %.0f ms; "+
		"change → NATS event (Go subscriber, baseline) p50 %.0f ms, p99 %.0f ms; browser/baseline p50 %.2f×, p99 %.2f×; %s",
		c.name, c.transport, len(browser), bp50, bp99, percentile(browser, 1), np50, np99, bp50/np50, bp99/np99, bursts)
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
