package providertest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/providers/providertest"
	"github.com/imgly/syncer/providers/s3"
)

// The suite must be able to fail: each new case is run, in a child test
// process, against an adapter broken in the way the case is there to catch,
// and the child must report that case failed. A child is the only honest
// way: a failing *testing.T fails its parents.
const brokenEnv = "PROVIDERTEST_BROKEN"

type broken struct {
	store string // "local" or "s3"
	wrap  func(providers.Provider) providers.Provider
	cases []string // subtests of TestBroken that must fail
}

var brokenAdapters = map[string]broken{
	"ignores-ctx": {"local", func(p providers.Provider) providers.Provider { return ignoresCtx{p} },
		[]string{"CancelDirect", "UnderPrefix/CancelDirect"}},
	"drops-between-pages": {"local", func(p providers.Provider) providers.Provider { return dropsLater{p} },
		[]string{"WritesBetweenPages", "Paging"}},
	"prefix-as-directory": {"local", func(p providers.Provider) providers.Provider { return dirPrefix{p} },
		[]string{"PrefixEdges", "UnderPrefix/Empty"}},
	"all-transient-local": {"local", func(p providers.Provider) providers.Provider { return allTransient{p} },
		[]string{"MissingBucket"}},
	"all-transient-s3": {"s3", func(p providers.Provider) providers.Provider { return allTransient{p} },
		[]string{"StatusKinds", "MissingBucket"}},
}

func TestSuiteCatchesBrokenAdapters(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child")
	}
	for name, b := range brokenAdapters {
		t.Run(name, func(t *testing.T) {
			for _, c := range b.cases {
				run := "^TestBroken$/^" + strings.ReplaceAll(c, "/", "$/^") + "$"
				cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", run, "-test.v", "-test.count=1")
				cmd.Env = append(os.Environ(), brokenEnv+"="+name)
				out, err := cmd.CombinedOutput()
				if err == nil {
					t.Errorf("%s: case %s passed against the broken adapter:\n%s", name, c, out)
					continue
				}
				if !strings.Contains(string(out), "--- FAIL: TestBroken/"+c+" ") {
					t.Errorf("%s: case %s did not fail (%v):\n%s", name, c, err, out)
				}
			}
		})
	}
}

// TestBroken is the child: the suite against the adapter named by brokenEnv.
func TestBroken(t *testing.T) {
	b, ok := brokenAdapters[os.Getenv(brokenEnv)]
	if !ok {
		t.Skip("run by TestSuiteCatchesBrokenAdapters")
	}
	var h providertest.Harness = localHarness{wrap: b.wrap}
	if b.store == "s3" {
		h = &s3Harness{srv: testkit.StartS3(t, nil), wrap: b.wrap}
	}
	providertest.Run(t, h)
}

type store struct {
	p      providers.Provider
	put    func(t *testing.T, key string, body []byte, ct string)
	delete func(t *testing.T, key string)
	name   string
}

func (s *store) Provider() providers.Provider                         { return s.p }
func (s *store) Put(t *testing.T, key string, body []byte, ct string) { s.put(t, key, body, ct) }
func (s *store) Delete(t *testing.T, key string)                      { s.delete(t, key) }

type localHarness struct {
	wrap func(providers.Provider) providers.Provider
}

func (h localHarness) open(t *testing.T, root string, pageSize int) providers.Provider {
	p, err := local.New(root, local.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return h.wrap(p)
}

func (h localHarness) New(t *testing.T, pageSize int) providertest.Store {
	root := t.TempDir()
	return &store{
		p: h.open(t, root, pageSize),
		put: func(t *testing.T, key string, body []byte, _ string) {
			path := filepath.Join(root, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, body, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		delete: func(t *testing.T, key string) {
			if err := os.Remove(filepath.Join(root, filepath.FromSlash(key))); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func (h localHarness) NewMissing(t *testing.T, pageSize int) providers.Provider {
	root := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	p := h.open(t, root, pageSize)
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	return p
}

func (localHarness) ReadsAhead() string { return "the local walker reads a directory whole" }

type s3Harness struct {
	srv  *testkit.S3
	n    atomic.Int64
	wrap func(providers.Provider) providers.Provider
}

func (h *s3Harness) open(t *testing.T, endpoint, bucket string, pageSize int) providers.Provider {
	src := s3.Config(h.srv.ProviderConfig(bucket))
	if endpoint != "" {
		src.Endpoint = endpoint
	}
	p, err := s3.New(context.Background(), src, s3.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	return h.wrap(p)
}

func (h *s3Harness) store(t *testing.T, endpoint string, pageSize int) *store {
	bucket := fmt.Sprintf("bucket-%d", h.n.Add(1))
	h.srv.CreateBucket(t, bucket)
	return &store{
		p:      h.open(t, endpoint, bucket, pageSize),
		put:    func(t *testing.T, k string, b []byte, ct string) { h.srv.Put(t, bucket, k, b, ct) },
		delete: func(t *testing.T, k string) { h.srv.Delete(t, bucket, k) },
		name:   bucket,
	}
}

func (h *s3Harness) New(t *testing.T, pageSize int) providertest.Store {
	return h.store(t, "", pageSize)
}

func (h *s3Harness) NewBehindProxy(t *testing.T, pageSize int) (providertest.Store, *testkit.FaultProxy) {
	proxy := testkit.StartFaultProxy(t, h.srv.URL, 1)
	return h.store(t, proxy.URL, pageSize), proxy
}

func (h *s3Harness) NotListings(providertest.Store) map[string]testkit.Fault { return nil }
func (h *s3Harness) BucketNotFoundCode() string                              { return "NoSuchBucket" }
func (h *s3Harness) NewMissing(t *testing.T, pageSize int) providers.Provider {
	return h.open(t, "", fmt.Sprintf("missing-%d", h.n.Add(1)), pageSize)
}

// ignoresCtx calls the adapter with a context of its own.
type ignoresCtx struct{ providers.Provider }

func (p ignoresCtx) ListPage(_ context.Context, prefix, token string) (providers.Page, error) {
	return p.Provider.ListPage(context.Background(), prefix, token)
}
func (p ignoresCtx) Stat(_ context.Context, key string) (providers.Object, error) {
	return p.Provider.Stat(context.Background(), key)
}

// dropsLater loses the first key of every page but the first.
type dropsLater struct{ providers.Provider }

func (p dropsLater) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	pg, err := p.Provider.ListPage(ctx, prefix, token)
	if err == nil && token != "" && len(pg.Objects) > 0 {
		pg.Objects = pg.Objects[1:]
	}
	return pg, err
}

// dirPrefix lists the directory a prefix is in rather than the prefix.
type dirPrefix struct{ providers.Provider }

func (p dirPrefix) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	dir := strings.TrimSuffix(prefix, "/")
	return p.Provider.ListPage(ctx, dir[:strings.LastIndexByte(dir, '/')+1], token)
}

// allTransient marks every error transient, whatever it was.
type allTransient struct{ providers.Provider }

func (p allTransient) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	pg, err := p.Provider.ListPage(ctx, prefix, token)
	return pg, transient(err)
}
func (p allTransient) Stat(ctx context.Context, key string) (providers.Object, error) {
	o, err := p.Provider.Stat(ctx, key)
	return o, transient(err)
}

func transient(err error) error {
	if err == nil {
		return nil
	}
	return providers.Classify(providers.ErrTransient, fmt.Errorf("%s", err.Error()))
}
