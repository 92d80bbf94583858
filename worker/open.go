package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/catalog/pgcatalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/providers"
)

// OpenProvider returns the provider adapter of src, of its kind in kinds,
// each call bounded by src.RequestTimeout and a throttled call retried after
// a jittered wait; its SDK logs through slog.Default().
func OpenProvider(ctx context.Context, kinds *providers.Registry, src config.Source) (providers.Provider, error) {
	p, _, err := openProvider(ctx, kinds, src, "source "+src.ID, providers.OpenOptions{})
	return p, err
}

// openProvider configures src through its kind (field names it in errors:
// "sources[2]") and opens its adapter, wrapped as OpenProvider says.
func openProvider(ctx context.Context, kinds *providers.Registry, src config.Source, field string, o providers.OpenOptions) (providers.Provider, providers.Configured, error) {
	_, c, err := src.Configure(kinds, field)
	if err != nil {
		return nil, c, err
	}
	p, err := c.Open(ctx, o)
	if err != nil {
		return nil, c, fmt.Errorf("source %s: %w", src.ID, err)
	}
	// Each attempt has its deadline; a throttled one is tried again later.
	return providers.WithThrottleBackoff(providers.WithTimeout(p, src.RequestTimeout), providers.DefaultThrottleBackoff()), c, nil
}

// Filter is the key filter of src.
func Filter(src config.Source) providers.Filter {
	return providers.Filter{Prefix: src.Prefix, Include: src.Include, Exclude: src.Exclude}
}

// Embedded is an in-process nats-server with JetStream.
type Embedded struct {
	Server *natsserver.Server
}

// StartEmbeddedNATS starts nats-server with JetStream on listen ("host:port"),
// storing streams in storeDir, after configure (e.g. websocketOptions) has
// adjusted its options.
func StartEmbeddedNATS(listen, storeDir string, configure ...func(*natsserver.Options) error) (*Embedded, error) {
	host, port, err := splitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: listen %q: %w", listen, err)
	}
	if port == 0 {
		port = -1 // nats-server reads 0 as its default 4222; -1 is "any free port"
	}
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	abs, err := filepath.Abs(storeDir)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	opts := &natsserver.Options{
		ServerName: "syncer-embedded", Host: host, Port: port,
		JetStream: true, StoreDir: abs, NoSigs: true, NoLog: true,
	}
	for _, c := range configure {
		if err := c(opts); err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
	}
	s, err := natsserver.NewServer(opts)
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
// to be shut down after the connection is closed. log receives the
// connection's life (see Connect).
func ConnectNATS(cfg config.NATS, name string, log *slog.Logger) (*nats.Conn, *Embedded, error) {
	url := cfg.URL
	var e *Embedded
	if url == "embedded" {
		var err error
		var ws []func(*natsserver.Options) error
		if cfg.Websocket.Enabled() {
			ws = append(ws, websocketOptions(cfg))
		}
		if e, err = StartEmbeddedNATS(cfg.Listen, cfg.StoreDir, ws...); err != nil {
			return nil, nil, err
		}
		url = e.URL()
	}
	nc, err := Connect(url, cfg, name, log)
	if err != nil {
		e.Shutdown()
		return nil, nil, err
	}
	return nc, e, nil
}

// Connect connects to NATS. It keeps trying in the background when the
// server is not reachable yet, and reconnects forever after, through
// authorization errors too (a password rotated in the wrong order must not
// stop publishing for good): syncer's outbox holds events meanwhile.
// Disconnects, reconnects, failed attempts (TLS, auth), asynchronous errors
// and the close reach log. Secrets are never logged.
func Connect(url string, cfg config.NATS, name string, log *slog.Logger) (*nats.Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("nats", RedactURL(url))
	opts, err := natsOptions(cfg, name, log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", RedactURL(url), err)
	}
	// Logged here rather than in a ConnectHandler: that one runs on
	// nats.go's goroutine, after the caller may have moved on.
	if nc.IsConnected() {
		log.Info("nats connected", "server", nc.ConnectedUrlRedacted())
	} else {
		log.Warn("nats not reachable yet; connecting in the background", "err", nc.LastError())
	}
	go logAttempts(nc, log, closedSignal(nc))
	return nc, nil
}

// reconnectBackoff bounds the wait between passes at reconnecting to NATS:
// 0.5–1 s, jittered (nats.go's own jitter was 0–0.25 s, 0–1 s with TLS, on
// a fixed 0.5 s). It does not grow: the outbox holds the events meanwhile,
// and a server back should be found within the second, not after minutes.
var reconnectBackoff = retry.Policy{Min: 500 * time.Millisecond, Max: time.Second}

func natsOptions(cfg config.NATS, name string, log *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),
		// nats.go calls this after each pass through the server list
		// that found none; it replaces ReconnectWait and ReconnectJitter.
		nats.CustomReconnectDelay(reconnectBackoff.Delay),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Debug("nats reconnect attempt failed", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			args := []any{"err", err}
			if sub != nil {
				args = append(args, "subject", sub.Subject)
			}
			log.Error("nats error", args...)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			// A deliberate Close at exit has no error and is not news.
			if err := nc.LastError(); err != nil {
				log.Error("nats connection closed", "err", err)
			}
		}),
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeySeed != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeed)
		if err != nil {
			// The error names the file, never the seed.
			return nil, fmt.Errorf("nats.nkeySeed: %w", err)
		}
		opts = append(opts, o)
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLS.Enabled() {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// tlsConfig builds the client TLS configuration of nats.tls. It is loaded
// once, at start: a rotated certificate takes a restart.
func tlsConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, for tests
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("nats.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats.tls.ca: %s holds no PEM certificate", t.CA)
		}
		tc.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("nats.tls.cert/key: load %s and %s: %w", t.Cert, t.Key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// logAttempts reports why reconnect attempts fail. nats.go reports an
// authorization error of an attempt to the error handler, but a failed TLS
// handshake only to LastError: each failed attempt turns the status back
// to RECONNECTING, which is when LastError holds the cause. A run of the
// same error is logged once, then every hundredth attempt.
func logAttempts(nc *nats.Conn, log *slog.Logger, closed <-chan struct{}) {
	ch := nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED)
	defer nc.RemoveStatusListener(ch)
	connected := nc.IsConnected()
	var last string
	n := 0
	for {
		var st nats.Status
		select {
		case <-closed:
			return
		case st = <-ch:
		}
		switch st {
		case nats.CONNECTED:
			// Reconnects are ReconnectHandler's to log; a first
			// connection that had to wait is logged here.
			if !connected {
				log.Info("nats connected", "server", nc.ConnectedUrlRedacted())
				connected = true
			}
			last, n = "", 0
		case nats.RECONNECTING:
			err := nc.LastError()
			if err == nil {
				continue
			}
			if msg := err.Error(); msg != last {
				last, n = msg, 0
			}
			if n%100 == 0 {
				log.Warn("nats connect attempt failed; retrying", "err", err, "attempts", n+1)
			}
			n++
		}
	}
}

// closedSignal is closed when nc is closed for good. Connect's options
// reconnect forever, so that happens only when something gives up on the
// connection; a worker then exits, and its supervisor restarts it.
func closedSignal(nc *nats.Conn) <-chan struct{} {
	ch := make(chan struct{})
	var once sync.Once
	done := func() { once.Do(func() { close(ch) }) }
	prev := nc.ClosedHandler()
	nc.SetClosedHandler(func(c *nats.Conn) {
		if prev != nil {
			prev(c)
		}
		done()
	})
	if nc.IsClosed() { // closed before the handler was set
		done()
	}
	return ch
}

// openSource opens one configured source: its adapter, through its kind,
// and its part of the catalog, whose recorded key order must be the kind's.
func (w *Worker) openSource(ctx context.Context, sc config.Source, field string) (*Source, error) {
	p, c, err := openProvider(ctx, w.opts.Kinds, sc, field, providers.OpenOptions{Log: w.log})
	if err != nil {
		return nil, err
	}
	cs := w.cat.Source(sc.ID, p.Order())
	if err := cs.CheckOrder(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return &Source{Config: sc, Provider: p, Catalog: cs.Indexed(sc.Assets.Index), Kind: c}, nil
}

// OpenCatalog opens the catalog cfg names: PostgreSQL for catalog.url, the
// embedded bbolt file in catalog.path otherwise.
func OpenCatalog(ctx context.Context, cfg config.Catalog, log *slog.Logger) (*catalog.Catalog, error) {
	if cfg.URL != "" {
		return pgcatalog.Open(ctx, cfg.URL, pgcatalog.Options{Log: log})
	}
	return catalog.Open(cfg.Path)
}
