package assetsource_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/azure"
	"github.com/imgly/syncer/providers/gcs"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/providers/s3"
	"github.com/imgly/syncer/schedule"
)

// store is one provider's bucket with a way to write into it.
type store struct {
	cfg config.Source
	p   providers.Provider
	put func(t *testing.T, key string, body []byte, ct string)
}

func newS3(t *testing.T) *store {
	srv := testkit.StartS3(t, nil)
	srv.CreateBucket(t, "media")
	cfg := srv.SourceConfig("media", "media")
	cfg.Assets.Index = true // S3 and local answer from the indexes, GCS and Azure by a pass: the same suite covers both
	p, err := s3.New(context.Background(), s3.Config(srv.ProviderConfig("media")))
	if err != nil {
		t.Fatal(err)
	}
	return &store{cfg: cfg, p: p, put: func(t *testing.T, key string, body []byte, ct string) { srv.Put(t, "media", key, body, ct) }}
}

func newGCS(t *testing.T) *store {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1", Writer: io.Discard,
	})
	if err != nil {
		t.Fatalf("fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "media"})
	// The emulator has no credentials to detect: sign with a key of our own
	// (the fake does not check signatures; real GCS would).
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	cfg := config.Source{ID: "media", Provider: "gcs", Bucket: "media"}
	ctx := context.Background()
	p, err := gcs.New(ctx, gcs.Config{ID: cfg.ID, Bucket: cfg.Bucket}, gcs.WithURLSigningKey("test@example.iam.gserviceaccount.com", pemKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := storage.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := c.Bucket("media")
	return &store{cfg: cfg, p: p, put: func(t *testing.T, key string, body []byte, ct string) {
		t.Helper()
		w := b.Object(key).NewWriter(context.Background())
		w.ChunkSize = 0
		w.ContentType = ct
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
	}}
}

const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

func newAzure(t *testing.T) *store {
	endpoint := strings.TrimRight(os.Getenv("SYNCER_TEST_AZURITE_BLOB"), "/")
	if endpoint == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SYNCER_TEST_AZURITE_BLOB is not set: the test command must start Azurite in CI")
		}
		t.Skip("SYNCER_TEST_AZURITE_BLOB not set: start Azurite to run")
	}
	cs := "DefaultEndpointsProtocol=http;AccountName=" + devAccount + ";AccountKey=" + devKey + ";BlobEndpoint=" + endpoint + ";"
	admin, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b) //nolint:errcheck
	name := "assets-" + hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := admin.CreateContainer(ctx, name, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() { admin.DeleteContainer(context.Background(), name, nil) }) //nolint:errcheck
	// Account name and key: the SAS is signed with the key.
	cfg := config.Source{ID: "media", Provider: "azure", Container: name,
		Azure: config.Azure{AccountURL: endpoint, AccountName: devAccount, AccountKey: devKey}}
	p, err := azure.New(ctx, azure.Config{ID: cfg.ID, Container: cfg.Container, AccountURL: endpoint, AccountName: devAccount, AccountKey: devKey})
	if err != nil {
		t.Fatal(err)
	}
	return &store{cfg: cfg, p: p, put: func(t *testing.T, key string, body []byte, ct string) {
		t.Helper()
		o := &azblob.UploadBufferOptions{}
		if ct != "" {
			o.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &ct}
		}
		if _, err := admin.UploadBuffer(context.Background(), name, key, body, o); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
	}}
}

func newLocal(t *testing.T, opts ...local.Option) *store {
	dir := t.TempDir()
	cfg := config.Source{ID: "media", Provider: "local", Path: dir, Assets: config.Assets{Index: true}}
	p, err := local.New(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &store{cfg: cfg, p: p, put: func(t *testing.T, key string, body []byte, ct string) {
		t.Helper()
		f := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}}
}

// api is a served source: catalog, asset server and HTTP test server.
type api struct {
	st  *store
	cat *catalog.Catalog
	src *catalog.Source
	url string
	// built: a scan built the source's deferred indexes.
	built bool
}

type apiOpts struct {
	open    bool
	tokens  []string
	origins []string
	mutate  func(*config.Source)
}

func serve(t *testing.T, st *store, o apiOpts) *api {
	t.Helper()
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	cfg := st.cfg
	// Defaults as config.Parse sets them.
	cfg.Assets.TTL = time.Hour
	if cfg.Provider == "local" {
		cfg.Assets.URI = config.AssetURIServe
	} else {
		cfg.Assets.URI = config.AssetURIPresign
	}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	src := cat.Source(cfg.ID, st.p.Order()).Indexed(cfg.Assets.Index)
	srv, err := assetsource.New(assetsource.Options{
		Sources: []assetsource.Source{{Config: cfg, Provider: st.p, Catalog: src}},
		Open:    o.open,
		Allowed: func(tok string) bool {
			for _, x := range o.tokens {
				if x == tok {
					return true
				}
			}
			return false
		},
		AllowedOrigins: o.origins,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &api{st: st, cat: cat, src: src, url: hs.URL}
}

// scan reconciles the source into the catalog as the scheduler does: the
// first call is a first import, which leaves an indexed source's order
// indexes to the build at its end.
func (a *api) scan(t *testing.T) {
	t.Helper()
	cfg := a.st.cfg
	res, err := schedule.Reconcile(context.Background(), schedule.Target{
		ID: cfg.ID, Provider: a.st.p, Catalog: a.src,
		Filter: providers.Filter{Prefix: cfg.Prefix, Include: cfg.Include, Exclude: cfg.Exclude},
	}, schedule.Options{SpillDir: t.TempDir()})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if cfg.Assets.Index && res.Added > 0 && res.IndexBuild == 0 && !a.built {
		t.Fatalf("the first import of an indexed source built no indexes: %+v", res)
	}
	a.built = a.built || res.IndexBuild > 0
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (a *api) get(t *testing.T, path string, hdr ...string) response {
	t.Helper()
	return do(t, http.MethodGet, a.url+path, hdr...)
}

func do(t *testing.T, method, url string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v struct {
		Data T `json:"data"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := json.NewDecoder(bytes.NewReader(r.body)).Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v.Data
}

func must(t *testing.T, r response, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

var _ = fmt.Sprint

// claim records keys in the catalog as if a provider had reported them.
func (a *api) claim(t *testing.T, keys ...string) {
	t.Helper()
	var muts []catalog.Mutation
	for _, k := range keys {
		muts = append(muts, catalog.Mutation{Object: providers.Object{Key: k, Size: 1, ETag: "x"}, Origin: catalog.Scan})
	}
	if _, err := a.src.Commit(context.Background(), muts); err != nil {
		t.Fatal(err)
	}
}
