package gcs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/providertest"
)

// startFake runs fake-gcs-server on loopback and points the SDK at it through
// STORAGE_EMULATOR_HOST, the way a deployment against an emulator would.
func startFake(t *testing.T) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http",
		Host:   "127.0.0.1",
		// Without PublicHost the fake answers every read with "not found".
		PublicHost: "127.0.0.1",
		Writer:     logSink(t),
	})
	if err != nil {
		t.Fatalf("fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	return srv
}

// logSink silences the fake's request log unless the test runs verbose.
func logSink(t *testing.T) *os.File {
	if testing.Verbose() {
		return os.Stderr
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type harness struct {
	srv *fakestorage.Server
	n   atomic.Int64
}

func (h *harness) New(t *testing.T, pageSize int) providertest.Store {
	t.Helper()
	name := fmt.Sprintf("bucket-%d", h.n.Add(1))
	h.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	ctx := context.Background()
	p, err := New(ctx, Config{ID: "t", Bucket: name}, WithPageSize(pageSize))
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := storage.NewClient(ctx)
	if err != nil {
		t.Fatalf("storage client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &store{p: p, b: c.Bucket(name)}
}

// NewBehindProxy implements providertest.FaultHarness: the provider talks
// to the fake through a fault proxy, the test's own client directly.
func (h *harness) NewBehindProxy(t *testing.T, pageSize int) (providertest.Store, *testkit.FaultProxy) {
	t.Helper()
	name := fmt.Sprintf("bucket-%d", h.n.Add(1))
	h.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	proxy := testkit.StartFaultProxy(t, h.srv.URL(), 1)
	ctx := context.Background()
	p, err := New(ctx, Config{ID: "t", Bucket: name, Endpoint: proxy.URL + "/storage/v1/"},
		WithPageSize(pageSize))
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := storage.NewClient(ctx)
	if err != nil {
		t.Fatalf("storage client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &store{p: p, b: c.Bucket(name), name: name}, proxy
}

// NotListings implements providertest.FaultHarness: JSON objects that are
// not an objects.list page.
func (h *harness) NotListings(st providertest.Store) map[string]testkit.Fault {
	name := st.(*store).name
	j := func(s string) testkit.Fault { return testkit.Body("application/json; charset=UTF-8", []byte(s)) }
	return map[string]testkit.Fault{
		"an object's metadata": j(`{"kind":"storage#object","name":"x","bucket":"` + name + `"}`),
		"items without kind":   j(`{"items":[]}`),
		"a JSON array":         j(`[]`),
		"JSON null":            j(`null`),
		"an error object":      j(`{"error":{"code":500,"message":"x"}}`),
	}
}

type store struct {
	p    *Provider
	b    *storage.BucketHandle
	name string
}

func (s *store) Provider() providers.Provider { return s.p }

func (s *store) Put(t *testing.T, key string, body []byte, contentType string) {
	t.Helper()
	put(t, s.b, key, body, contentType)
}

func (s *store) Delete(t *testing.T, key string) {
	t.Helper()
	if err := s.b.Object(key).Delete(context.Background()); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
}

func put(t *testing.T, b *storage.BucketHandle, key string, body []byte, contentType string) {
	t.Helper()
	w := b.Object(key).NewWriter(context.Background())
	w.ChunkSize = 0 // one request; the fake's resumable uploads are slow
	w.ContentType = contentType
	if _, err := w.Write(body); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func TestConformance(t *testing.T) {
	providertest.Run(t, &harness{srv: startFake(t)})
}

func TestVersionIsGeneration(t *testing.T) {
	h := &harness{srv: startFake(t)}
	s := h.New(t, 10).(*store)
	put(t, s.b, "k.png", []byte("one"), "image/png")
	ctx := context.Background()
	first, err := s.p.Stat(ctx, "k.png")
	if err != nil {
		t.Fatal(err)
	}
	put(t, s.b, "k.png", []byte("two!"), "image/png")
	second, err := s.p.Stat(ctx, "k.png")
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.b.Object("k.png").Attrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.Version != fmt.Sprint(a.Generation) || second.Version == first.Version {
		t.Errorf("versions %q then %q, generation %d", first.Version, second.Version, a.Generation)
	}
	if second.Size != 4 || second.ContentType != "image/png" || second.LastModified.IsZero() {
		t.Errorf("stat after overwrite: %+v", second)
	}
}

func TestMissingBucket(t *testing.T) {
	startFake(t)
	p, err := New(context.Background(), Config{ID: "t", Bucket: "no-such-bucket"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.ListPage(context.Background(), "", "")
	if !errors.Is(err, providers.ErrBucketNotFound) {
		t.Fatalf("list of a missing bucket: %v, want ErrBucketNotFound", err)
	}
	if !strings.Contains(err.Error(), "gs://no-such-bucket/") {
		t.Errorf("error does not say what failed: %v", err)
	}
}

// TestErrorKinds maps HTTP failures to error kinds. The failures come from a
// loopback HTTP server answering in the JSON API's error format, because the
// emulator never refuses, throttles or fails.
func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   error
	}{
		{http.StatusForbidden, providers.ErrPermission},
		{http.StatusUnauthorized, providers.ErrPermission},
		{http.StatusTooManyRequests, providers.ErrThrottled},
		{http.StatusServiceUnavailable, providers.ErrThrottled},
		{http.StatusInternalServerError, providers.ErrTransient},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `{"error":{"code":%d,"message":"injected"}}`, tc.status)
			}))
			defer srv.Close()
			t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL, "http://"))
			p, err := New(context.Background(), Config{ID: "t", Bucket: "b"}, WithMaxAttempts(1))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := p.ListPage(ctx, "", ""); !errors.Is(err, tc.want) {
				t.Errorf("list: %v, want %v", err, tc.want)
			}
			if _, err := p.Stat(ctx, "k"); !errors.Is(err, tc.want) {
				t.Errorf("stat: %v, want %v", err, tc.want)
			}
			if n := calls.Load(); n != 2 {
				t.Errorf("%d requests with WithMaxAttempts(1), want 2", n)
			}
		})
	}
}

func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	for _, tc := range []struct {
		name, path string
		ok         bool
	}{
		{"missing", filepath.Join(dir, "nope.json"), false},
		{"not json", write("garbage.json", "private_key: hunter2"), false},
		{"unknown type", write("odd.json", `{"type":"mystery","private_key":"hunter2"}`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), Config{ID: "t", Bucket: "b", CredentialsFile: tc.path})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the file's contents: %v", err)
			}
		})
	}
	opts, err := ClientOptions(write("sa.json", `{"type":"service_account"}`), true)
	if err != nil || len(opts) != 0 {
		t.Errorf("with an emulator the key file is not used: %v, %v", opts, err)
	}
	opts, err = ClientOptions(filepath.Join(dir, "sa.json"), false)
	if err != nil || len(opts) != 1 {
		t.Errorf("service account key file: %v, %v", opts, err)
	}
}

// BucketNotFoundCode implements providertest.FaultHarness: the SDK reads the
// status alone.
func (h *harness) BucketNotFoundCode() string { return "" }

// NewMissing implements providertest.MissingHarness: a bucket never made.
// fake-gcs-server checks no credentials, so there is no DeniedHarness: the
// 401/403 mapping is checked through the fault proxy (StatusKinds).
func (h *harness) NewMissing(t *testing.T, pageSize int) providers.Provider {
	p, err := New(context.Background(), Config{ID: "t", Bucket: fmt.Sprintf("missing-%d", h.n.Add(1))}, WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// ReadsAhead implements providertest.ReadAheadHarness: fake-gcs-server's
// page token is the name of the next page's first object, read when the
// page before was made, so a key inserted just before it is missed. GCS's
// own tokens resume after the last key returned; the adapter hands tokens
// through unchanged.
func (h *harness) ReadsAhead() string {
	return "fake-gcs-server's page token is the next page's first key, fixed by the page before"
}
