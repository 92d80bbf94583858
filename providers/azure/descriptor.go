package azure

import (
	"context"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/imgly/syncer/internal/sdklog"
	"github.com/imgly/syncer/providers"
)

// Config is what the adapter needs of one Azure Blob source: its container
// and its azure block. One way to authenticate: a connection string, an
// account key, a SAS token, or none of them for DefaultAzureCredential
// (workload identity on AKS).
type Config struct {
	// ID is the source's id, for errors.
	ID               string `yaml:"-"`
	Container        string `yaml:"-"`
	AccountURL       string `yaml:"accountURL"`
	ConnectionString string `yaml:"connectionString"`
	AccountName      string `yaml:"accountName"`
	AccountKey       string `yaml:"accountKey"`
	SASToken         string `yaml:"sasToken"`
}

// Descriptor is the azure provider kind.
func Descriptor() providers.Descriptor {
	return providers.Descriptor{
		Name: Name, Order: KeyOrder, Block: "azure", Fields: []string{"container"},
		Transports: []string{TransportStorageQueue, TransportEventGrid}, Presigns: true,
		Configure: configure,
	}
}

func configure(spec providers.Spec) (providers.Configured, error) {
	p := providers.NewProblems(spec)
	var v struct {
		Container      string        `yaml:"container"`
		Block          Config        `yaml:"azure"`
		Notifications  Notifications `yaml:"notifications"`
		RequestTimeout time.Duration `yaml:"requestTimeout"`
	}
	if err := spec.Decode(&v); err != nil {
		return providers.Configured{}, err
	}
	c := v.Block
	c.ID, c.Container = spec.ID, v.Container
	c.check(p)
	n := v.Notifications
	n.Source, n.Account, n.RequestTimeout = spec.ID, c, v.RequestTimeout
	return providers.Configured{
		Bucket: c.Container, Location: providers.Location(Name, c.Container, spec.Prefix), Settings: c, Notifications: n,
		Open: func(ctx context.Context, o providers.OpenOptions) (providers.Provider, error) {
			routeLogs(ctx, o.Logger())
			return New(ctx, c)
		},
	}, p.Err()
}

// routeLogs sends the Azure SDK's logging to log when it logs debug. The
// SDK's listener is process-wide (see sdklog.RouteAzure); without one it
// formats no log lines at all.
func routeLogs(ctx context.Context, log *slog.Logger) {
	if log.Enabled(ctx, slog.LevelDebug) {
		sdklog.RouteAzure(log)
	}
}

// check reports what New would refuse, naming the fields, never a value.
func (c *Config) check(p *providers.Problems) {
	if c.Container == "" {
		p.Add([]string{"container"}, "is required for provider azure")
	}
	if c.ConnectionString == "" && c.AccountURL == "" {
		p.Add([]string{"azure", "accountURL"}, "is required unless azure.connectionString is set")
	}
	if c.AccountKey != "" && c.AccountName == "" {
		p.Add([]string{"azure", "accountName"}, "is required with azure.accountKey")
	}
	if c.AccountURL != "" {
		if err := providers.CheckHTTPURL(c.AccountURL); err != nil {
			p.Add([]string{"azure", "accountURL"}, "%v", err)
		}
	}
	if c.ConnectionString != "" {
		if err := providers.CheckConnectionString(c.ConnectionString, "Blob"); err != nil {
			p.Add([]string{"azure", "connectionString"}, "%v", err)
		}
	}
	if c.AccountKey != "" {
		if _, err := base64.StdEncoding.DecodeString(c.AccountKey); err != nil {
			p.Add([]string{"azure", "accountKey"}, "is not valid base64 (copy it whole from the storage account's access keys)")
		}
	}
}
