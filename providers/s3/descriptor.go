package s3

import (
	"context"
	"time"

	"github.com/imgly/syncer/internal/sdklog"
	"github.com/imgly/syncer/providers"
)

// Config is what the adapter needs of one S3 source: the source's bucket
// and its s3 block. Credentials come from the standard AWS chain, never
// from here.
type Config struct {
	Bucket    string `yaml:"-"`
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	PathStyle bool   `yaml:"pathStyle"`
}

// DefaultRegion is s3.region when unset (S3-compatible stores accept any).
const DefaultRegion = "us-east-1"

// Descriptor is the s3 provider kind.
func Descriptor() providers.Descriptor {
	return providers.Descriptor{
		Name: Name, Order: KeyOrder, Block: "s3", Fields: []string{"bucket"},
		Transports: []string{TransportSQS, TransportWebhook}, Presigns: true, ListsRanges: true,
		Configure: configure,
	}
}

func configure(spec providers.Spec) (providers.Configured, error) {
	p := providers.NewProblems(spec)
	var v struct {
		Bucket         string        `yaml:"bucket"`
		Block          Config        `yaml:"s3"`
		Notifications  Notifications `yaml:"notifications"`
		RequestTimeout time.Duration `yaml:"requestTimeout"`
	}
	if err := spec.Decode(&v); err != nil {
		return providers.Configured{}, err
	}
	c := v.Block
	c.Bucket = v.Bucket
	if c.Bucket == "" {
		p.Add([]string{"bucket"}, "is required for provider s3")
	}
	if c.Endpoint != "" {
		if err := providers.CheckHTTPURL(c.Endpoint); err != nil {
			p.Add([]string{"s3", "endpoint"}, "%v", err)
		}
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	n := v.Notifications
	n.Source, n.Region, n.RequestTimeout = spec.ID, c.Region, v.RequestTimeout
	return providers.Configured{
		Bucket: c.Bucket, Location: providers.Location(Name, c.Bucket, spec.Prefix), Settings: c, Notifications: n,
		Open: func(ctx context.Context, o providers.OpenOptions) (providers.Provider, error) {
			return New(ctx, c, WithAWSOptions(sdklog.AWSOptions(o.Logger())...))
		},
	}, p.Err()
}
