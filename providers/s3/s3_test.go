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
	p, err := s3.New(context.Background(), h.srv.SourceConfig("t", bucket), s3.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	return &store{srv: h.srv, bucket: bucket, p: p}
}

func (s *store) Provider() providers.Provider { return s.p }
func (s *store) Put(t *testing.T, key string, body []byte, ct string) {
	s.srv.Put(t, s.bucket, key, body, ct)
}
func (s *store) Delete(t *testing.T, key string) { s.srv.Delete(t, s.bucket, key) }

func TestConformance(t *testing.T) {
	providertest.Run(t, &harness{srv: testkit.StartS3(t, nil)})
}
