package gcs

import (
	"context"

	"google.golang.org/api/option"

	"github.com/imgly/syncer/providers"
)

// Config is what the adapter needs of one GCS source: its bucket and its
// gcs block. Without CredentialsFile the Application Default Credentials
// apply; STORAGE_EMULATOR_HOST is respected.
type Config struct {
	// ID is the source's id, for errors.
	ID              string `yaml:"-"`
	Bucket          string `yaml:"-"`
	CredentialsFile string `yaml:"credentialsFile"`
	Endpoint        string `yaml:"endpoint"`
}

// Descriptor is the gcs provider kind.
func Descriptor() providers.Descriptor {
	return providers.Descriptor{
		Name: Name, Order: KeyOrder, Block: "gcs", Fields: []string{"bucket"},
		Transports: []string{TransportPubSub}, Presigns: true, ListsRanges: true,
		Configure: configure,
	}
}

func configure(spec providers.Spec) (providers.Configured, error) {
	p := providers.NewProblems(spec)
	var v struct {
		Bucket        string        `yaml:"bucket"`
		Block         Config        `yaml:"gcs"`
		Notifications Notifications `yaml:"notifications"`
	}
	if err := spec.Decode(&v); err != nil {
		return providers.Configured{}, err
	}
	c := v.Block
	c.ID, c.Bucket = spec.ID, v.Bucket
	if c.Bucket == "" {
		p.Add([]string{"bucket"}, "is required for provider gcs")
	}
	if c.Endpoint != "" {
		if err := providers.CheckHTTPURL(c.Endpoint); err != nil {
			p.Add([]string{"gcs", "endpoint"}, "%v", err)
		}
	}
	n := v.Notifications
	n.Source, n.Bucket, n.CredentialsFile = spec.ID, c.Bucket, c.CredentialsFile
	return providers.Configured{
		Bucket: c.Bucket, Location: providers.Location("gs", c.Bucket, spec.Prefix), Settings: c, Notifications: n,
		Open: func(ctx context.Context, o providers.OpenOptions) (providers.Provider, error) {
			return New(ctx, c, WithClientOptions(option.WithLogger(o.Logger())))
		},
	}, p.Err()
}
