package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/worker"
)

// get requests addr+path with token (none when ""), returning status and
// body.
func get(t *testing.T, addr, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for k, v := range files {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func parseTime(t *testing.T, what string, tm *time.Time) time.Time {
	t.Helper()
	if tm == nil || tm.IsZero() {
		t.Fatalf("%s is null", what)
	}
	if tm.Nanosecond() != 0 || tm.Location() != time.UTC {
		t.Errorf("%s %v: want whole seconds in UTC", what, tm)
	}
	return *tm
}

// rfc3339Seconds is how /status writes its times.
var rfc3339Seconds = regexp.MustCompile(`"(startedAt|nextScanAt|lastMessageAt)":\s*"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"`)

// TestStatusTwoSources: /status of a worker with a local and an S3 source
// (with a webhook) after their scans were published, and the metrics an
// operator alerts on, present from the start.
func TestStatusTwoSources(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "media")
	s3.Put(t, "media", "p/a.jpg", []byte("a"), "image/jpeg")
	s3.Put(t, "media", "p/b.jpg", []byte("bb"), "image/jpeg")
	s3.Put(t, "media", "other/c.jpg", []byte("c"), "image/jpeg")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"x.txt": "x", "y/z.txt": "z", "w.txt": "w"})

	// Credentials in the URL must not show in /status (the server has no
	// authorization configured and ignores them).
	natsURL := strings.Replace(n.URL, "nats://", "nats://alice:s3cret@", 1)
	cfg := testConfig(t, natsURL, config.Source{ID: "loc", Provider: "local", Path: dir})
	remote := s3.SourceConfig("bkt", "media")
	remote.Prefix = "p/"
	remote.Schedule = "@every 1h"
	remote.Notifications.Webhook = &config.Webhook{Token: "hook-token"}
	remote.Assets.Index = true // built after the start-up scan's first listing
	cfg.Sources = append(cfg.Sources, remote)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.bkt")
	sub.expect(added("p/a.jpg", "p/b.jpg")...)
	startupScanned(t, w, "loc")
	startupScanned(t, w, "bkt")
	w.drained(t)

	// The metrics, all series of the configured transports at zero.
	addr := w.HTTPAddr()
	for _, o := range notify.Outcomes {
		series := fmt.Sprintf(`syncer_notifications_total{outcome="%s",source="bkt",transport="webhook"} 0`, o)
		if !hasLine(t, addr, series) {
			t.Errorf("no %s", series)
		}
	}
	for _, want := range []string{
		`syncer_build_info{`, `syncer_nats_connected 1`,
		`syncer_source_objects{source="bkt"} 2`, `syncer_source_objects{source="loc"} 3`,
		`syncer_source_outbox_pending_changes{source="bkt"} 0`,
		`syncer_source_last_scan_success_timestamp_seconds{source="loc"} `,
		`syncer_scan_duration_seconds_count{result="ok",source="bkt"} `,
		`syncer_scan_duration_seconds_count{result="failed",source="bkt"} 0`,
		`syncer_notification_lag_seconds_count{source="bkt",transport="webhook"} 0`,
		`syncer_notification_transport_errors_total`,
	} {
		if want == `syncer_notification_transport_errors_total` {
			continue // no queue consumer here: the family has no series yet
		}
		if !hasLine(t, addr, want) {
			t.Errorf("/metrics has no line starting %q", want)
		}
	}
	if v := metric(t, addr, "syncer_source_last_scan_success_timestamp_seconds", `source="bkt"`); v < float64(before.Unix()) {
		t.Errorf("last scan success %v, want after %v", v, before.Unix())
	}

	// A webhook request (malformed) is a message: lastMessageAt is set.
	req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/s3/bkt", strings.NewReader("not json"))
	req.Header.Set("Authorization", "Bearer hook-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("webhook: %s", resp.Status)
	}
	if v := metric(t, addr, "syncer_notifications_total", `source="bkt"`, `transport="webhook"`, `outcome="malformed"`); v != 1 {
		t.Errorf("malformed webhook requests counted %v, want 1", v)
	}

	resp, body := get(t, addr, "/status", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/status: %s %s %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	if bytes.Contains(body, []byte("s3cret")) || bytes.Contains(body, []byte("hook-token")) {
		t.Fatalf("/status shows a secret: %s", body)
	}
	var st worker.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	if n := len(rfc3339Seconds.FindAll(body, -1)); n < 4 {
		t.Errorf("/status has %d times as RFC 3339 whole seconds in UTC, want every one:\n%s", n, body)
	}
	if st.Version == "" {
		t.Error("no version")
	}
	if started := parseTime(t, "startedAt", &st.StartedAt); started.Before(before.Truncate(time.Second)) || started.After(time.Now()) {
		t.Errorf("startedAt %v", started)
	}
	if st.NATS.URL != n.URL || !st.NATS.Connected || st.NATS.Embedded {
		t.Errorf("nats %+v, want url %s connected, not embedded", st.NATS, n.URL)
	}
	if len(st.Sources) != 2 {
		t.Fatalf("%d sources: %s", len(st.Sources), body)
	}
	loc, bkt := st.Sources[0], st.Sources[1]
	if loc.ID != "loc" || loc.Provider != "local" || loc.Bucket != dir || loc.Objects != 3 || loc.LastSeq != 3 ||
		loc.PublishedSeq != 3 || loc.OutboxPending != 0 || len(loc.Notifications) != 0 || loc.Indexes != "" {
		t.Errorf("loc: %+v", loc)
	}
	if bkt.ID != "bkt" || bkt.Provider != "s3" || bkt.Bucket != "media" || bkt.Prefix != "p/" || bkt.Objects != 2 ||
		bkt.LastSeq != 2 || bkt.PublishedSeq != 2 || bkt.OutboxPending != 0 || bkt.Indexes != "ready" {
		t.Errorf("bkt: %+v", bkt)
	}
	for _, s := range st.Sources {
		ls := s.LastScan
		if ls == nil {
			t.Fatalf("%s: lastScan null after a scan", s.ID)
		}
		if ls.Result != "ok" || ls.Error != "" || ls.DurationSeconds <= 0 {
			t.Errorf("%s: lastScan %+v", s.ID, ls)
		}
		parseTime(t, s.ID+" lastScan.startedAt", &ls.StartedAt)
		next := parseTime(t, s.ID+" nextScanAt", s.NextScanAt)
		if d := time.Until(next); d < 58*time.Minute || d > 61*time.Minute {
			t.Errorf("%s: nextScanAt %v is %v away, want about 1h (@every 1h)", s.ID, next, d)
		}
	}
	if loc.LastScan.Listed != 3 || bkt.LastScan.Listed != 2 {
		t.Errorf("listed %d and %d, want 3 and 2", loc.LastScan.Listed, bkt.LastScan.Listed)
	}
	if len(bkt.Notifications) != 1 {
		t.Fatalf("bkt notifications %+v", bkt.Notifications)
	}
	nt := bkt.Notifications[0]
	if nt.Transport != "webhook" || nt.State != "serving" {
		t.Errorf("notification %+v", nt)
	}
	if at := parseTime(t, "lastMessageAt", nt.LastMessageAt); at.Before(before) {
		t.Errorf("lastMessageAt %v", at)
	}
	// The raw JSON has the contract's names, lastScan null before a scan
	// is covered by the unit test of the types.
	for _, k := range []string{`"version"`, `"revision"`, `"startedAt"`, `"nats"`, `"url"`, `"connected"`, `"embedded"`,
		`"sources"`, `"provider"`, `"bucket"`, `"prefix"`, `"objects"`, `"lastSeq"`, `"publishedSeq"`, `"outboxPending"`,
		`"lastScan"`, `"durationSeconds"`, `"listed"`, `"result"`, `"error"`, `"nextScanAt"`, `"notifications"`,
		`"transport"`, `"state"`, `"lastMessageAt"`, `"indexes"`} {
		if !bytes.Contains(body, []byte(k)) {
			t.Errorf("/status has no %s", k)
		}
	}
}

// hasLine says /metrics has a line starting with prefix.
func hasLine(t *testing.T, addr, prefix string) bool {
	t.Helper()
	_, body := get(t, addr, "/metrics", "")
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return true
		}
	}
	return false
}

// lockedBuffer is a log destination tests read while the worker writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged runs a worker on cfg logging to the returned buffer with h.
func startLogged(t *testing.T, cfg *config.Config, h func(io.Writer) slog.Handler) (*worker.Worker, *lockedBuffer) {
	t.Helper()
	buf := &lockedBuffer{}
	w, err := worker.New(context.Background(), cfg, worker.Options{Log: slog.New(h(buf)), FlushTimeout: time.Second})
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
	return w, buf
}

func TestDataEndpointAuth(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	local := func() config.Source { return config.Source{ID: "loc", Provider: "local", Path: t.TempDir()} }
	textLog := func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) }

	t.Run("tokens", func(t *testing.T) {
		cfg := testConfig(t, n.URL, local())
		cfg.HTTP.Auth.Tokens = []string{"first-token", "second-token"}
		w := start(t, cfg)
		for _, path := range []string{"/status", "/catalog/stats", "/catalog/sources/loc/objects"} {
			for _, tok := range []string{"", "wrong", "first-token-but-longer", "first"} {
				resp, body := get(t, w.HTTPAddr(), path, tok)
				if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(string(body)) != `{"error":"unauthorized"}` {
					t.Errorf("%s with token %q: %s %s", path, tok, resp.Status, body)
				}
			}
			for _, tok := range cfg.HTTP.Auth.Tokens {
				if resp, body := get(t, w.HTTPAddr(), path, tok); resp.StatusCode != http.StatusOK {
					t.Errorf("%s with a configured token: %s %s", path, resp.Status, body)
				}
			}
		}
		// Health, readiness and metrics stay open.
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			if resp, body := get(t, w.HTTPAddr(), path, ""); resp.StatusCode != http.StatusOK {
				t.Errorf("%s without a token: %s %s", path, resp.Status, body)
			}
		}
	})

	t.Run("loopback without tokens is open", func(t *testing.T) {
		cfg := testConfig(t, n.URL, local())
		w, logs := startLogged(t, cfg, textLog)
		if resp, body := get(t, w.HTTPAddr(), "/status", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("/status: %s %s", resp.Status, body)
		}
		if strings.Contains(logs.String(), "auth") {
			t.Errorf("warned on a loopback listener:\n%s", logs)
		}
	})

	t.Run("non-loopback without tokens is closed", func(t *testing.T) {
		cfg := testConfig(t, n.URL, local())
		cfg.HTTP.Listen = ":0" // every interface
		w, logs := startLogged(t, cfg, textLog)
		_, port, _ := strings.Cut(w.HTTPAddr(), "]:")
		if port == "" {
			port = w.HTTPAddr()[strings.LastIndex(w.HTTPAddr(), ":")+1:]
		}
		addr := "127.0.0.1:" + port
		if resp, body := get(t, addr, "/status", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("/status: %s %s", resp.Status, body)
		}
		if resp, _ := get(t, addr, "/healthz", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz: %s", resp.Status)
		}
		if got := strings.Count(logs.String(), "level=WARN msg=\"http.listen is not loopback"); got != 1 {
			t.Errorf("%d warnings about the open listener, want 1:\n%s", got, logs)
		}
	})
}

func TestCatalogEndpoints(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	dir := t.TempDir()
	files := map[string]string{"a.txt": "1", "a/1": "1", "a/2": "2", "a/3": "3", "ab": "x", "b/1": "1"}
	for i := range 3000 {
		files[fmt.Sprintf("many/%05d", i)] = "m"
	}
	writeFiles(t, dir, files)
	cfg := testConfig(t, n.URL, config.Source{ID: "loc", Provider: "local", Path: dir})
	w := start(t, cfg)
	startupScanned(t, w, "loc")
	addr := w.HTTPAddr()

	resp, body := get(t, addr, "/catalog/stats", "")
	var stats worker.CatalogStats
	if err := json.Unmarshal(body, &stats); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/catalog/stats: %s %s %v", resp.Status, body, err)
	}
	if len(stats.Sources) != 1 || stats.Sources[0].ID != "loc" || stats.Sources[0].Objects != uint64(len(files)) ||
		stats.Sources[0].LastSeq != uint64(len(files)) {
		t.Errorf("stats %+v", stats)
	}

	keys := func(path string) []string {
		t.Helper()
		resp, body := get(t, addr, path, "")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%s: %s %s %s", path, resp.Status, resp.Header.Get("Content-Type"), body)
		}
		var out []string
		for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
			if line == "" {
				continue
			}
			var e catalog.Entry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("%s: line %q: %v", path, line, err)
			}
			if e.Seq == 0 || e.Size == 0 {
				t.Errorf("%s: entry %+v", path, e)
			}
			out = append(out, e.Key)
		}
		return out
	}
	check := func(path string, want ...string) {
		t.Helper()
		if got := keys(path); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
	check("/catalog/sources/loc/objects?prefix=a", "a.txt", "a/1", "a/2", "a/3", "ab")
	check("/catalog/sources/loc/objects?prefix=a/", "a/1", "a/2", "a/3")
	check("/catalog/sources/loc/objects?prefix=a&limit=2", "a.txt", "a/1")
	check("/catalog/sources/loc/objects?prefix=a/2&limit=0", "a/2")
	check("/catalog/sources/loc/objects?prefix=zzz")
	// All of them, read in several chunks: in order, none twice.
	all := keys("/catalog/sources/loc/objects")
	if len(all) != len(files) || all[0] != "a.txt" || all[len(all)-1] != "many/02999" {
		t.Errorf("all: %d keys, first %q", len(all), all[0])
	}
	for i := 1; i < len(all); i++ {
		if all[i-1] >= all[i] {
			t.Fatalf("keys out of order at %d: %q then %q", i, all[i-1], all[i])
		}
	}
	check("/catalog/sources/loc/objects?prefix=many/&limit=1001", all[6:6+1001]...)

	// Streamed: no Content-Length, the body written as it is read.
	resp, _ = get(t, addr, "/catalog/sources/loc/objects", "")
	if resp.ContentLength != -1 {
		t.Errorf("content length %d: the listing was buffered", resp.ContentLength)
	}

	resp, body = get(t, addr, "/catalog/sources/nope/objects", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"error":"no source \"nope\""`) {
		t.Errorf("unknown source: %s %s", resp.Status, body)
	}
	for _, bad := range []string{"x", "-1", "1.5"} {
		resp, body = get(t, addr, "/catalog/sources/loc/objects?limit="+bad, "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"error":"limit`) {
			t.Errorf("limit %s: %s %s", bad, resp.Status, body)
		}
	}
}

// TestJSONLogsOnly: with a JSON handler every line the worker and its SDKs
// write is one JSON object. The S3 server answers the first listings 503, so
// the AWS SDK retries and (at debug level) logs its retries, through the
// worker's logger.
func TestJSONLogsOnly(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	var failed atomic.Int32
	s3 := testkit.StartS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" && r.URL.Query().Has("list-type") && failed.Add(1) <= 2 {
				http.Error(w, "<Error><Code>SlowDown</Code><Message>slow down</Message></Error>", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s3.CreateBucket(t, "media")
	s3.Put(t, "media", "a.jpg", []byte("a"), "")
	cfg := testConfig(t, n.URL, s3.SourceConfig("bkt", "media"))
	cfg.Sources = append(cfg.Sources, config.Source{ID: "loc", Provider: "local", Path: t.TempDir(), Schedule: "@every 1h"},
		s3.SourceConfig("gone", "missing-bucket")) // its scan fails: an error is logged
	w, logs := startLogged(t, cfg, func(w io.Writer) slog.Handler {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"scan failed`) || !strings.Contains(logs.String(), `"msg":"published"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no scan failure and publish logged:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	get(t, w.HTTPAddr(), "/status", "")
	out := logs.String()
	sdkLines := 0
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("line %d is not JSON: %q", i+1, line)
		}
		if v["sdk"] == "aws" {
			sdkLines++
		}
	}
	if sdkLines == 0 {
		t.Errorf("no AWS SDK line (the retries of the 503s) in the log:\n%s", out)
	}
}
