package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/api/option"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/sdklog"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/azure"
	"github.com/imgly/syncer/providers/gcs"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/providers/s3"
)

// OpenProvider returns the provider adapter of src, each call bounded by
// src.RequestTimeout; its SDK logs through slog.Default().
func OpenProvider(ctx context.Context, src config.Source) (providers.Provider, error) {
	return openProvider(ctx, src, slog.Default())
}

// openProvider returns the provider adapter of src, each call bounded by
// src.RequestTimeout, its SDK's logging sent to log.
func openProvider(ctx context.Context, src config.Source, log *slog.Logger) (providers.Provider, error) {
	p, err := openAdapter(ctx, src, log)
	if err != nil {
		return nil, err
	}
	return providers.WithTimeout(p, src.RequestTimeout), nil
}

func openAdapter(ctx context.Context, src config.Source, log *slog.Logger) (providers.Provider, error) {
	switch src.Provider {
	case "local":
		if err := os.MkdirAll(src.Path, 0o755); err != nil {
			return nil, fmt.Errorf("source %s: create %s: %w", src.ID, src.Path, err)
		}
		return local.New(src.Path, local.WithFollowSymlinks(src.FollowSymlinks))
	case "s3":
		return s3.New(ctx, src, s3.WithAWSOptions(sdklog.AWSOptions(log)...))
	case "gcs":
		return gcs.New(ctx, src, gcs.WithClientOptions(option.WithLogger(log)))
	case "azure":
		routeAzureLogs(log)
		return azure.New(ctx, src)
	}
	return nil, fmt.Errorf("source %s: provider %q is not supported by this build", src.ID, src.Provider)
}

// routeAzureLogs sends the Azure SDK's logging to log when it logs debug
// lines: the SDK's listener is process-wide (see sdklog.RouteAzure), and
// without one the SDK formats no log lines at all.
func routeAzureLogs(log *slog.Logger) {
	if log.Enabled(context.Background(), slog.LevelDebug) {
		sdklog.RouteAzure(log)
	}
}

// Filter is the key filter of src.
func Filter(src config.Source) providers.Filter {
	return providers.Filter{Prefix: src.Prefix, Include: src.Include, Exclude: src.Exclude}
}

// BucketOf is the bucket (or container) name notifications name for src.
func BucketOf(src config.Source) string {
	if src.Provider == "azure" {
		return src.Container
	}
	return src.Bucket
}

// Embedded is an in-process nats-server with JetStream.
type Embedded struct {
	Server *natsserver.Server
}

// StartEmbeddedNATS starts nats-server with JetStream on listen ("host:port"),
// storing streams in storeDir.
func StartEmbeddedNATS(listen, storeDir string) (*Embedded, error) {
	host, port, err := splitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: listen %q: %w", listen, err)
	}
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	abs, err := filepath.Abs(storeDir)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	s, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "syncer-embedded", Host: host, Port: port,
		JetStream: true, StoreDir: abs, NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready on %s (is the port in use?)", listen)
	}
	return &Embedded{Server: s}, nil
}

// URL is the client URL of the embedded server.
func (e *Embedded) URL() string { return e.Server.ClientURL() }

// Shutdown stops the server; on a nil Embedded it does nothing.
func (e *Embedded) Shutdown() {
	if e == nil {
		return
	}
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}

// ConnectNATS connects to cfg.URL as name, first starting the embedded
// server when the URL is "embedded". The embedded server (nil otherwise) is
// to be shut down after the connection is closed.
func ConnectNATS(cfg config.NATS, name string) (*nats.Conn, *Embedded, error) {
	url := cfg.URL
	var e *Embedded
	if url == "embedded" {
		var err error
		if e, err = StartEmbeddedNATS(cfg.Listen, cfg.StoreDir); err != nil {
			return nil, nil, err
		}
		url = e.URL()
	}
	nc, err := Connect(url, cfg, name)
	if err != nil {
		e.Shutdown()
		return nil, nil, err
	}
	return nc, e, nil
}

// Connect connects to NATS. It keeps trying in the background when the
// server is not reachable yet: syncer's outbox holds events meanwhile.
func Connect(url string, cfg config.NATS, name string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", url, err)
	}
	return nc, nil
}

// OrderOf is the key order of a provider kind, for opening a catalog
// without opening the provider.
func OrderOf(provider string) providers.Order {
	switch provider {
	case "azure":
		return azure.KeyOrder
	case "gcs":
		return gcs.KeyOrder
	case "s3":
		return s3.KeyOrder
	}
	return local.KeyOrder
}
