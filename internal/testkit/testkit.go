// Package testkit starts the real servers syncer's tests talk to on loopback:
// gofakes3 (S3 protocol over HTTP) and an embedded nats-server with JetStream.
package testkit

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/imgly/syncer/config"
)

// S3 is an in-process S3 server.
type S3 struct {
	URL    string
	Client *awss3.Client
}

// StartS3 starts gofakes3 behind wrap (nil for none), which lets a test
// inject faults at the HTTP level, the way a real server fails.
func StartS3(t testing.TB, wrap func(http.Handler) http.Handler) *S3 {
	t.Helper()
	var h http.Handler = gofakes3.New(s3mem.New()).Server()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	client := awss3.New(awss3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		// gofakes3 stores aws-chunked bodies raw unless checksums are
		// only sent when required (see shared/notes/emulators.md).
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return &S3{URL: srv.URL, Client: client}
}

// CreateBucket creates a bucket.
func (s *S3) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	if _, err := s.Client.CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
}

// Put writes an object.
func (s *S3) Put(t testing.TB, bucket, key string, body []byte, contentType string) {
	t.Helper()
	in := &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if _, err := s.Client.PutObject(context.Background(), in); err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// Delete removes an object.
func (s *S3) Delete(t testing.TB, bucket, key string) {
	t.Helper()
	if _, err := s.Client.DeleteObject(context.Background(), &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("delete s3://%s/%s: %v", bucket, key, err)
	}
}

// S3Config has the fields of the s3 adapter's Config; convert it
// (s3.Config(srv.ProviderConfig(b))). testkit cannot name the adapter's
// type: the adapter's own tests import testkit.
type S3Config struct {
	Bucket    string
	Endpoint  string
	Region    string
	PathStyle bool
}

// ProviderConfig is the s3 adapter's configuration for bucket on this
// server.
func (s *S3) ProviderConfig(bucket string) S3Config {
	return S3Config{Bucket: bucket, Endpoint: s.URL, Region: "us-east-1", PathStyle: true}
}

// SourceConfig is an S3 source over bucket on this server.
func (s *S3) SourceConfig(id, bucket string) config.Source {
	return config.Source{
		ID: id, Provider: "s3", Bucket: bucket, Schedule: "@every 1h",
		S3: config.S3{Endpoint: s.URL, Region: "us-east-1", PathStyle: true},
	}
}

// NATS is an embedded nats-server with JetStream.
type NATS struct {
	Server *natsserver.Server
	URL    string
	Port   int
}

// StartNATS starts nats-server with JetStream on a random loopback port (or
// port, when not zero) storing in storeDir.
func StartNATS(t testing.TB, storeDir string, port int) *NATS {
	t.Helper()
	return StartNATSWith(t, storeDir, func(o *natsserver.Options) {
		if port != 0 {
			o.Port = port
		}
	}).NATS
}

// Shutdown stops the server and waits until it is down.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}
