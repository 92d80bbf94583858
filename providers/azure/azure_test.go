package azure_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/azure"
	"github.com/imgly/syncer/providers/providertest"
)

// The well-known key of Azurite's (and the old storage emulator's) built-in
// account; public, not a secret.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteBlob returns Azurite's blob endpoint, or skips (fails in CI) when
// the test command did not start it.
func azuriteBlob(t *testing.T) string {
	t.Helper()
	u := os.Getenv("SYNCER_TEST_AZURITE_BLOB")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SYNCER_TEST_AZURITE_BLOB is not set: the test command must start Azurite in CI")
		}
		t.Skip("SYNCER_TEST_AZURITE_BLOB not set (e.g. http://127.0.0.1:10000/devstoreaccount1): start Azurite with --skipApiVersionCheck to run")
	}
	return strings.TrimRight(u, "/")
}

func connString(endpoint string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + devAccount + ";AccountKey=" + devKey + ";BlobEndpoint=" + endpoint + ";"
}

func uniqueName(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// newContainer creates a fresh container, deleted when the test ends.
func newContainer(t *testing.T, endpoint string) (*azblob.Client, string) {
	t.Helper()
	admin, err := azblob.NewClientFromConnectionString(connString(endpoint), nil)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("syncer-")
	ctx := context.Background()
	if _, err := admin.CreateContainer(ctx, name, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.DeleteContainer(context.Background(), name, nil) })
	return admin, name
}

type harness struct{ endpoint string }

func (h harness) New(t *testing.T, pageSize int) providertest.Store {
	admin, name := newContainer(t, h.endpoint)
	src := azure.Config{ID: "az", Container: name, ConnectionString: connString(h.endpoint)}
	p, err := azure.New(context.Background(), src, azure.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return &store{admin: admin, container: name, p: p}
}

// NewBehindProxy implements providertest.FaultHarness: the provider talks
// to Azurite through a fault proxy, the test's own client directly.
func (h harness) NewBehindProxy(t *testing.T, pageSize int) (providertest.Store, *testkit.FaultProxy) {
	admin, name := newContainer(t, h.endpoint)
	u, err := url.Parse(h.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testkit.StartFaultProxy(t, u.Scheme+"://"+u.Host, 1)
	src := azure.Config{ID: "az", Container: name, ConnectionString: connString(proxy.URL + u.Path)}
	p, err := azure.New(context.Background(), src, azure.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return &store{admin: admin, container: name, p: p}, proxy
}

// NotListings implements providertest.FaultHarness: any XML that is not an
// EnumerationResults of the container, an <Error> above all.
func (h harness) NotListings(st providertest.Store) map[string]testkit.Fault {
	c := st.(*store).container
	return map[string]testkit.Fault{
		"Azure error document": testkit.Body("application/xml", []byte(`<?xml version="1.0" encoding="utf-8"?><Error><Code>InternalError</Code><Message>x</Message></Error>`)),
		"other XML":            testkit.Body("application/xml", []byte(`<?xml version="1.0"?><Blobs/>`)),
		"no Blobs element":     testkit.Body("application/xml", []byte(`<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://x/" ContainerName="`+c+`"></EnumerationResults>`)),
	}
}

type store struct {
	admin     *azblob.Client
	container string
	p         *azure.Provider
}

func (s *store) Provider() providers.Provider { return s.p }

func (s *store) Put(t *testing.T, key string, body []byte, contentType string) {
	t.Helper()
	o := &azblob.UploadBufferOptions{}
	if contentType != "" {
		o.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &contentType}
	}
	if _, err := s.admin.UploadBuffer(context.Background(), s.container, key, body, o); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func (s *store) Delete(t *testing.T, key string) {
	t.Helper()
	if _, err := s.admin.DeleteBlob(context.Background(), s.container, key, nil); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
}

func TestConformance(t *testing.T) {
	providertest.Run(t, harness{endpoint: azuriteBlob(t)})
}

// TestUTF16Order pins down the order the emulator lists in, independently
// of the suite: the emoji (U+1F600, a surrogate pair) comes before U+FF21
// and U+E000, which UTF-8 byte order would put first.
func TestUTF16Order(t *testing.T) {
	endpoint := azuriteBlob(t)
	admin, name := newContainer(t, endpoint)
	s := &store{admin: admin, container: name}
	keys := []string{"k/\uFF21", "k/\U0001F600", "k/\uE000", "k/z", "k/\u00e9"}
	for _, k := range keys {
		s.Put(t, k, []byte("x"), "")
	}
	p, err := azure.New(context.Background(), azure.Config{ID: "o", Container: name, ConnectionString: connString(endpoint)}, azure.WithPageSize(2))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range providertest.ListAll(t, p, "k/") {
		got = append(got, o.Key)
	}
	want := []string{"k/z", "k/\u00e9", "k/\U0001F600", "k/\uE000", "k/\uFF21"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listing %q, want UTF-16 order %q", got, want)
	}
}

func TestAuthModes(t *testing.T) {
	endpoint := azuriteBlob(t)
	admin, name := newContainer(t, endpoint)
	s := &store{admin: admin, container: name}
	s.Put(t, "one.png", []byte("12345"), "image/png")

	cc := admin.ServiceClient().NewContainerClient(name)
	sasURL, err := cc.GetSASURL(sas.ContainerPermissions{Read: true, List: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	token := sasURL[strings.IndexByte(sasURL, '?')+1:]

	cases := map[string]azure.Config{
		"connection string": {ConnectionString: connString(endpoint)},
		"shared key":        {AccountURL: endpoint, AccountName: devAccount, AccountKey: devKey},
		"sas token":         {AccountURL: endpoint, SASToken: "?" + token},
		"sas in url":        {AccountURL: endpoint + "?" + token},
	}
	for name_, az := range cases {
		t.Run(name_, func(t *testing.T) {
			p, err := azure.New(context.Background(), withContainer(az, "a", name))
			if err != nil {
				t.Fatal(err)
			}
			objs := providertest.ListAll(t, p, "")
			if len(objs) != 1 || objs[0].Key != "one.png" || objs[0].Size != 5 || objs[0].ContentType != "image/png" {
				t.Fatalf("listing %+v", objs)
			}
			o, err := p.Stat(context.Background(), "one.png")
			if err != nil || o.ETag != objs[0].ETag {
				t.Fatalf("stat %+v, %v; listed etag %q", o, err, objs[0].ETag)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	endpoint := azuriteBlob(t)
	_, name := newContainer(t, endpoint)
	ctx := context.Background()

	missing, err := azure.New(ctx, azure.Config{ID: "m", Container: uniqueName("missing-"), ConnectionString: connString(endpoint)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := missing.ListPage(ctx, "", ""); !errors.Is(err, providers.ErrBucketNotFound) {
		t.Errorf("list of a missing container: %v, want ErrBucketNotFound", err)
	}
	if _, err := missing.Stat(ctx, "x"); !errors.Is(err, providers.ErrBucketNotFound) {
		t.Errorf("stat in a missing container: %v, want ErrBucketNotFound", err)
	}

	// A well-formed key that is not the account's.
	wrongKey := "AAAA" + devKey[4:]
	bad, err := azure.New(ctx, azure.Config{ID: "b", Container: name, AccountURL: endpoint, AccountName: devAccount, AccountKey: wrongKey})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.ListPage(ctx, "", "")
	t.Logf("wrong key: %v", err)
	if !errors.Is(err, providers.ErrPermission) {
		t.Errorf("list with a wrong key: %v, want ErrPermission", err)
	}
	if err != nil && (strings.Contains(err.Error(), wrongKey) || strings.Contains(err.Error(), "\n")) {
		t.Errorf("error message leaks or sprawls: %q", err)
	}

	// A listing against a port nobody listens on is a transient failure,
	// and the SAS in the URL does not reach the message.
	dead, err := azure.New(ctx, azure.Config{ID: "d", Container: name, AccountURL: "http://127.0.0.1:1/" + devAccount, SASToken: "sig=SECRETSIG"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dead.ListPage(ctx, "", "")
	t.Logf("closed port: %v", err)
	if !errors.Is(err, providers.ErrTransient) || !retryable(err) {
		t.Errorf("list against a closed port: %v, want ErrTransient", err)
	}
	if err != nil && strings.Contains(err.Error(), "SECRETSIG") {
		t.Errorf("error leaks the SAS: %q", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p, err := azure.New(ctx, azure.Config{ID: "c", Container: name, ConnectionString: connString(endpoint)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ListPage(cctx, "", ""); !errors.Is(err, context.Canceled) || retryable(err) {
		t.Errorf("cancelled listing: %v, want context.Canceled, not retryable", err)
	}
}

func TestNewRejects(t *testing.T) {
	ctx := context.Background()
	for name, src := range map[string]azure.Config{
		"no container": {ID: "x", AccountURL: "https://a.blob.core.windows.net"},
		"no url":       {ID: "x", Container: "c"},
		"bad url":      {ID: "x", Container: "c", AccountURL: "ftp://a?sig=SECRET"},
		"key, no name": {ID: "x", Container: "c", AccountURL: "https://a.blob.core.windows.net", AccountKey: "a2V5"},
		"key not b64":  {ID: "x", Container: "c", AccountURL: "https://a.blob.core.windows.net", AccountName: "a", AccountKey: "SECRET!!"},
		"bad conn str": {ID: "x", Container: "c", ConnectionString: "AccountKey=SECRET"},
	} {
		_, err := azure.New(ctx, src)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error leaks a secret: %v", name, err)
		}
	}
	if _, err := azure.New(ctx, azure.Config{ID: "x", Container: "c", AccountURL: "https://a.blob.core.windows.net"}, azure.WithPageSize(5001)); err == nil {
		t.Error("page size 5001 accepted")
	}
}

func TestNormalizeETag(t *testing.T) {
	for in, want := range map[string]string{
		`"0x8D4BCC2E4835CD0"`:   "0x8D4BCC2E4835CD0",
		"0x8D4BCC2E4835CD0":     "0x8D4BCC2E4835CD0",
		`W/"0x8D4BCC2E4835CD0"`: "0x8D4BCC2E4835CD0",
		`"`:                     `"`,
		"":                      "",
	} {
		if got := azure.NormalizeETag(in); got != want {
			t.Errorf("NormalizeETag(%q) = %q, want %q", in, got, want)
		}
	}
}

// BucketNotFoundCode implements providertest.FaultHarness.
func (h harness) BucketNotFoundCode() string { return "ContainerNotFound" }

// NewMissing implements providertest.MissingHarness: a container never made.
func (h harness) NewMissing(t *testing.T, pageSize int) providers.Provider {
	src := azure.Config{ID: "m", Container: uniqueName("missing-"), ConnectionString: connString(h.endpoint)}
	p, err := azure.New(context.Background(), src, azure.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Denied implements providertest.DeniedHarness: a well-formed account key
// that is not the account's, and a SAS that may read but not list.
func (h harness) Denied(t *testing.T) map[string]providertest.Denied {
	admin, name := newContainer(t, h.endpoint)
	(&store{admin: admin, container: name}).Put(t, "k", []byte("x"), "")
	sasURL, err := admin.ServiceClient().NewContainerClient(name).GetSASURL(sas.ContainerPermissions{Read: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]providertest.Denied{}
	for label, tc := range map[string]struct {
		az   azure.Config
		stat bool
	}{
		"wrong account key": {azure.Config{AccountURL: h.endpoint, AccountName: devAccount, AccountKey: "AAAA" + devKey[4:]}, true},
		"SAS without list":  {azure.Config{AccountURL: h.endpoint, SASToken: "?" + sasURL[strings.IndexByte(sasURL, '?')+1:]}, false},
	} {
		p, err := azure.New(context.Background(), withContainer(tc.az, "d", name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		out[label] = providertest.Denied{Provider: p, StatDenied: tc.stat}
	}
	return out
}

// withContainer is az for source id over container.
func withContainer(az azure.Config, id, container string) azure.Config {
	az.ID, az.Container = id, container
	return az
}

// retryable reports whether err is of a kind a later attempt may cure.
func retryable(err error) bool {
	return errors.Is(err, providers.ErrThrottled) || errors.Is(err, providers.ErrTransient)
}
