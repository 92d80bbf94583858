package s3

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// Option configures the S3 adapter (New) or the SQS consumer
// (NewSQSConsumer): both load their AWS config through loadAWSConfig, so
// credentials and the HTTP client are chosen one way for the whole cloud.
type Option func(*options)

type options struct {
	pageSize   int // the adapter's only; the SQS consumer ignores it
	awsOptions []func(*awsconfig.LoadOptions) error
	httpClient aws.HTTPClient
}

// WithPageSize sets the objects per ListObjectsV2 page.
func WithPageSize(n int) Option { return func(o *options) { o.pageSize = n } }

// WithAWSOptions adds options to the AWS config loading, e.g. static
// credentials in tests.
func WithAWSOptions(opts ...func(*awsconfig.LoadOptions) error) Option {
	return func(o *options) { o.awsOptions = append(o.awsOptions, opts...) }
}

// WithHTTPClient sets the HTTP client the SDK uses.
func WithHTTPClient(c aws.HTTPClient) Option { return func(o *options) { o.httpClient = c } }

// loadAWSConfig loads the AWS config for region from the default chain
// (environment, shared config, web identity / IRSA), then extra (what one
// client needs alone), then the caller's options, which win.
func loadAWSConfig(ctx context.Context, region string, o options, extra ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	load := append([]func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}, extra...)
	if o.httpClient != nil {
		load = append(load, awsconfig.WithHTTPClient(o.httpClient))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, append(load, o.awsOptions...)...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	return cfg, nil
}
