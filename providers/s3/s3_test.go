package s3_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/providertest"
	"github.com/imgly/syncer/providers/s3"
)

type harness struct {
	srv *testkit.S3
	n   atomic.Int64
}

type store struct {
	srv    *testkit.S3
	bucket string
	p      providers.Provider
}

func (h *harness) New(t *testing.T, pageSize int) providertest.Store {
	bucket := fmt.Sprintf("bucket-%d", h.n.Add(1))
	h.srv.CreateBucket(t, bucket)
	p, err := s3.New(context.Background(), s3.Config(h.srv.ProviderConfig(bucket)), s3.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	return &store{srv: h.srv, bucket: bucket, p: p}
}

// NewBehindProxy implements providertest.FaultHarness.
func (h *harness) NewBehindProxy(t *testing.T, pageSize int) (providertest.Store, *testkit.FaultProxy) {
	bucket := fmt.Sprintf("bucket-%d", h.n.Add(1))
	h.srv.CreateBucket(t, bucket)
	proxy := testkit.StartFaultProxy(t, h.srv.URL, 1)
	src := s3.Config(h.srv.ProviderConfig(bucket))
	src.Endpoint = proxy.URL
	p, err := s3.New(context.Background(), src, s3.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	return &store{srv: h.srv, bucket: bucket, p: p}, proxy
}

// NotListings implements providertest.FaultHarness: S3 adds a listing that
// contradicts itself.
func (h *harness) NotListings(st providertest.Store) map[string]testkit.Fault {
	bucket := st.(*store).bucket
	const head = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`
	return map[string]testkit.Fault{
		"S3 error document":  testkit.Body("application/xml", []byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code></Error>`)),
		"KeyCount disagrees": testkit.Body("application/xml", []byte(head+`<Name>`+bucket+`</Name><KeyCount>3</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`)),
		"no IsTruncated":     testkit.Body("application/xml", []byte(head+`<Name>`+bucket+`</Name><KeyCount>0</KeyCount></ListBucketResult>`)),
	}
}

func (s *store) Provider() providers.Provider { return s.p }
func (s *store) Put(t *testing.T, key string, body []byte, ct string) {
	s.srv.Put(t, s.bucket, key, body, ct)
}
func (s *store) Delete(t *testing.T, key string) { s.srv.Delete(t, s.bucket, key) }

func TestConformance(t *testing.T) {
	providertest.Run(t, &harness{srv: testkit.StartS3(t, nil)})
}

// BucketNotFoundCode implements providertest.FaultHarness.
func (h *harness) BucketNotFoundCode() string { return "NoSuchBucket" }

// NewMissing implements providertest.MissingHarness: a bucket never made.
// gofakes3 checks no credentials, so there is no DeniedHarness: the 401/403
// mapping is checked through the fault proxy (StatusKinds).
func (h *harness) NewMissing(t *testing.T, pageSize int) providers.Provider {
	p, err := s3.New(context.Background(), s3.Config(h.srv.ProviderConfig(fmt.Sprintf("missing-%d", h.n.Add(1)))), s3.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
