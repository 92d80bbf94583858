// Package livetest runs a real syncer for the tests of its live clients
// (clients/js, examples/): gofakes3 whose PUTs and DELETEs are announced to
// syncer by an S3 webhook, the way MinIO announces them, an embedded
// nats-server with JetStream and a WebSocket listener, and the worker with
// its HTTP listener. The worker can be stopped and started again on the
// same address and catalog, as a crash and a supervisor's restart would.
package livetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/schedule"
	"github.com/imgly/syncer/worker"
)

// WebhookToken is the bearer token of every source's S3 webhook.
const WebhookToken = "livetest-webhook-token"

// Options shape the syncer under test.
type Options struct {
	// Sources are the source ids; each is a bucket of the same name.
	Sources []string
	// Local are ids of local sources, each a directory (Syncer.Dir) scanned
	// every 2 s like the embedded default's ./assets; Put and Delete on
	// them write and remove files.
	Local []string
	// Configure, if set, adjusts the configuration before it is validated
	// (tokens, CORS, event settings).
	Configure func(*config.Config)
	// Base, if set, is the configuration to start from instead of a bare
	// embedded-NATS one: the embedded default's, say. Its listeners, catalog
	// and NATS store move to free ports and temporary directories, and its
	// local sources to directories of their own (Syncer.Dir); its nats.url
	// must be "embedded" (EmbeddedNATS is then implied).
	Base []byte
	// EmbeddedNATS runs syncer on its own embedded nats-server (nats.url:
	// embedded) with the WebSocket listener browsers use, nats.websocket
	// {listen, allowedOrigins: WSOrigins}, as a user of the embedded
	// server configures it; otherwise syncer connects to a testkit server
	// set up the same way. Both are on free loopback ports.
	EmbeddedNATS bool
	WSOrigins    []string
}

// Syncer is a running syncer and the servers around it.
type Syncer struct {
	S3 *testkit.S3
	// NATS is the testkit server; nil with Options.EmbeddedNATS.
	NATS    *testkit.ConfiguredNATS
	NATSURL string // nats://127.0.0.1:<port>, for Go subscribers with every permission
	WSURL   string // ws://127.0.0.1:<port> of the NATS WebSocket listener (read-only)
	// URL is http://<addr> of syncer's HTTP listener; it stays the same
	// across Stop and Start.
	URL string

	cfg      *config.Config
	dirs     map[string]string
	hookBase atomic.Pointer[string] // where the S3 server announces changes; nil while stopped
	hookErrs atomic.Int64
	hooked   map[string]bool // sources with an S3 webhook: the others learn of changes by scanning

	mu     sync.Mutex
	w      *worker.Worker
	cancel context.CancelFunc
	done   chan error
}

// Start starts everything and waits until the start-up scan of every
// source is over, so that what a test uploads next is a change.
func Start(t testing.TB, o Options) *Syncer {
	t.Helper()
	s := &Syncer{dirs: map[string]string{"": t.TempDir()}} // "": where files are written before the rename
	s.S3 = testkit.StartS3(t, s.announce)
	base := o.Base
	if base == nil {
		base = []byte("nats: {url: embedded}\n")
	} else {
		o.EmbeddedNATS = true
	}
	cfg, err := config.Parse(base, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for i, src := range cfg.Sources {
		if src.Provider == "local" {
			s.dirs[src.ID] = t.TempDir()
			cfg.Sources[i].Path = s.dirs[src.ID]
		}
	}
	if o.EmbeddedNATS {
		// Free ports for both listeners: the WebSocket's "port 0" is
		// syncer's own rule; nats.listen's is set after validation below.
		cfg.NATS.StoreDir = t.TempDir()
		cfg.NATS.Websocket = config.Websocket{Listen: "127.0.0.1:0", AllowedOrigins: o.WSOrigins}
	} else {
		s.NATS = startNATS(t)
		s.NATSURL, s.WSURL = s.NATS.URL, s.NATS.Server.WebsocketURL()
		cfg.NATS.URL = s.NATS.URL
	}
	cfg.Catalog.Path = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	for _, id := range o.Sources {
		s.S3.CreateBucket(t, id)
		src := s.S3.SourceConfig(id, id)
		src.Assets.URI, src.Assets.TTL = config.AssetURIPresign, time.Hour
		src.Notifications.Webhook = &config.Webhook{Token: WebhookToken}
		cfg.Sources = append(cfg.Sources, src)
	}
	for _, id := range o.Local {
		s.dirs[id] = t.TempDir()
		cfg.Sources = append(cfg.Sources, config.Source{ID: id, Provider: "local", Path: s.dirs[id], Schedule: "@every 2s"})
	}
	if o.Configure != nil {
		o.Configure(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.EmbeddedNATS {
		// Any free port; the first start replaces it with the port taken.
		cfg.NATS.Listen = "127.0.0.1:0"
	}
	s.cfg = cfg
	s.hooked = map[string]bool{}
	for _, src := range cfg.Sources {
		s.hooked[src.ID] = src.Notifications.Webhook != nil
	}
	s.Start(t)
	s.URL = "http://" + s.cfg.HTTP.Listen
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Start starts the worker (again), on the address it had before.
func (s *Syncer) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		t.Fatal("livetest: syncer already running")
	}
	urls := &logURLs{}
	w, err := worker.New(context.Background(), s.cfg, worker.Options{Log: slog.New(urls)})
	if err != nil {
		t.Fatalf("livetest: start syncer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	s.w, s.cancel, s.done = w, cancel, done
	s.cfg.HTTP.Listen = w.HTTPAddr() // a restart binds the same port
	if s.cfg.NATS.URL == "embedded" {
		s.pinEmbedded(t, ctx, w, urls)
	}
	base := "http://" + w.HTTPAddr() + "/webhooks/s3/"
	s.hookBase.Store(&base)
	for _, src := range s.cfg.Sources {
		waitScan(t, ctx, w, src.ID)
	}
}

// Stop stops the worker; the S3 webhook is not announced while it is down
// (as a real sender gives up), so only syncer's next scan sees those changes.
func (s *Syncer) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return
	}
	s.hookBase.Store(nil)
	began := time.Now()
	s.cancel()
	if err := <-s.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("livetest: syncer run: %v", err)
	}
	s.w.Close()
	s.w = nil
	if d := time.Since(began); d > 5*time.Second {
		// Not a failure here (the worker's shutdown is not under test), but visible.
		t.Logf("livetest: syncer took %v to stop", d.Round(time.Millisecond))
	}
}

// waitScan waits for the start-up scan of id: a scan asked for while it
// runs is refused as busy.
func waitScan(t testing.TB, ctx context.Context, w *worker.Worker, id string) {
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, err := w.Scan(ctx, id)
		if err == nil {
			return
		}
		if !errors.Is(err, schedule.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("livetest: scan %s: %v", id, err)
		}
		time.Sleep(10 * time.Millisecond) // polling the scan lock, with a deadline
	}
}

// Dir is the directory of local source id.
func (s *Syncer) Dir(id string) string { return s.dirs[id] }

// Put writes an object; the S3 server then announces it to syncer. On a
// local source it writes the file (written outside the source and renamed
// into it, so that a scan never sees half of it).
func (s *Syncer) Put(t testing.TB, bucket, key string, body []byte, contentType string) {
	t.Helper()
	if dir, ok := s.dirs[bucket]; ok {
		path := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		part := filepath.Join(s.dirs[""], filepath.Base(path))
		if err := os.WriteFile(part, body, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(part, path); err != nil {
			t.Fatal(err)
		}
		return
	}
	s.S3.Put(t, bucket, key, body, contentType)
}

// Delete removes an object; the S3 server then announces it to syncer.
func (s *Syncer) Delete(t testing.TB, bucket, key string) {
	t.Helper()
	if dir, ok := s.dirs[bucket]; ok {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(key))); err != nil {
			t.Fatal(err)
		}
		return
	}
	s.S3.Delete(t, bucket, key)
}

// WebhookFailures counts announcements syncer did not take (it was down).
func (s *Syncer) WebhookFailures() int64 { return s.hookErrs.Load() }

// announce wraps the S3 server: after an object PUT or DELETE succeeded
// it POSTs a MinIO-style notification to syncer's webhook before
// answering, as MinIO's synchronous webhook targets do.
func (s *Syncer) announce(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		bucket, key, isObject := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		name := ""
		switch {
		case !isObject || key == "" || r.URL.Query().Has("uploadId"):
		case r.Method == http.MethodPut:
			name = "s3:ObjectCreated:Put"
		case r.Method == http.MethodDelete:
			name = "s3:ObjectRemoved:Delete"
		}
		rec := &status{ResponseWriter: rw, code: http.StatusOK}
		if name == "" {
			next.ServeHTTP(rw, r)
			return
		}
		next.ServeHTTP(rec, r)
		if rec.code < 300 && s.hooked[bucket] {
			if err := s.post(r.Context(), bucket, name, key); err != nil {
				s.hookErrs.Add(1)
			}
		}
	})
}

type status struct {
	http.ResponseWriter
	code int
}

func (s *status) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

func (s *Syncer) post(ctx context.Context, bucket, name, key string) error {
	base := s.hookBase.Load()
	if base == nil {
		return errors.New("syncer is down")
	}
	// The bucket is the source id (Options.Sources).
	body, _ := json.Marshal(map[string]any{
		"EventName": name, "Key": bucket + "/" + key,
		"Records": []any{map[string]any{
			"eventVersion": "2.0", "eventSource": "minio:s3", "eventName": name,
			"eventTime": time.Now().UTC().Format(time.RFC3339Nano),
			"s3": map[string]any{
				"s3SchemaVersion": "1.0", "configurationId": "livetest",
				"bucket": map[string]any{"name": bucket, "arn": "arn:aws:s3:::" + bucket},
				"object": map[string]any{"key": url.QueryEscape(key)},
			},
		}},
	})
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, *base+bucket, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+WebhookToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, res.Body) //nolint:errcheck // drained for reuse
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New(res.Status)
	}
	return nil
}

// FreePort is a loopback port free at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Op is what a node script asks the test to do, one JSON line on its
// stdout: {"op":"put","bucket":"media","key":"a.png","body":"<base64>",
// "contentType":"image/png"}, {"op":"delete",...}, {"op":"stop"} or
// {"op":"start"}, {"op":"burst","bucket":"media","key":"p","n":100} (puts
// p-0000.png … p-0099.png one after the other; with "senders":16 from 16
// concurrent senders, S3 sources only). The test answers "ok\n" on the script's stdin once done.
// The script's last line is its result: {"ok":true,...} or {"ok":false,"error":"..."}.
type Op struct {
	Op          string `json:"op"`
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Body        []byte `json:"body"`
	ContentType string `json:"contentType"`
	N           int    `json:"n"`
	Senders     int    `json:"senders"` // burst: concurrent senders (default 1, one after the other)
	// Result lines.
	OK    *bool  `json:"ok"`
	Error string `json:"error"`
}
