package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/buildinfo"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/kinds"
	"github.com/imgly/syncer/schedule"
	"github.com/imgly/syncer/worker"
)

// defaultConfig is what `syncer run` does without a config: watch ./assets,
// publish to an embedded NATS on the standard port. It is for interactive
// use: the directory watch announces a file once it has been quiet for
// 100 ms, the event goes out 25 ms after (drop to event ~130 ms,
// docs/benchmarks.md), and a scan every 30 s is the safety net.
func defaultConfig() (*config.Config, error) {
	return config.ParseFor([]byte(`
nats: {url: embedded, listen: "127.0.0.1:4222"}
catalog: {path: ./data}
http: {listen: "127.0.0.1:8080"}
events: {coalesceWindow: 25ms}
sources:
  - id: assets
    provider: local
    path: ./assets
    settle: 100ms
    schedule: "@every 30s"
`), func(string) (string, bool) { return "", false }, kinds.All())
}

// loadSource loads the configuration at path and returns it with its
// source id.
func loadSource(path, id string) (*config.Config, *config.Source, error) {
	if id == "" {
		return nil, nil, usagef("--source is required")
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	for i := range cfg.Sources {
		if cfg.Sources[i].ID == id {
			return cfg, &cfg.Sources[i], nil
		}
	}
	return nil, nil, usagef("--source %q is not in %s", id, path)
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usagef("--config is required")
	}
	return config.LoadFor(path, kinds.All())
}

// newLogger logs to w as cfg says. Durations print as "1.5s": slog's
// default is nanoseconds in both formats, unreadable in a log line.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Level)) //nolint:errcheck // validated
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: readableDurations}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

func newRunCmd(stderr io.Writer) *cobra.Command {
	var path, replica string
	c := &cobra.Command{
		Use:   "run [--config FILE] [--replica-id ID]",
		Short: "Run the worker: scan, consume notifications, publish events, serve HTTP",
		Long: `Run the worker. It scans every source at start (catching up on downtime) and on its schedule,
consumes bucket notifications, publishes events and serves HTTP (/healthz, /readyz, /metrics,
/status, webhooks). SIGTERM or SIGINT stops scheduling, ends the current scan safely, flushes
the publisher and exits 0.

Without --config it runs the embedded default: it watches ./assets and publishes to an
embedded NATS server on 127.0.0.1:4222.`,
		Example: `  syncer run
  syncer run --config syncer.yaml`,
		RunE: func(c *cobra.Command, _ []string) error {
			return cmdRun(c.Context(), path, replica, stderr)
		},
	}
	c.Flags().StringVar(&path, "config", "", "configuration file (default: the embedded default over ./assets)")
	c.Flags().StringVar(&replica, "replica-id", "", "this replica's id among those sharing a PostgreSQL catalog (default: $POD_NAME, else the host name)")
	return c
}

func cmdRun(ctx context.Context, path, replica string, stderr io.Writer) error {
	var (
		cfg *config.Config
		err error
	)
	if path == "" {
		cfg, err = defaultConfig()
	} else {
		cfg, err = loadConfig(path)
	}
	if err != nil {
		return err
	}
	if err := checkPorts(cfg); err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	w, err := worker.New(ctx, cfg, worker.Options{Log: log, Kinds: kinds.All(), Replica: replica})
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "listen" {
		// The port was taken between checkPorts and the worker's listen;
		// the HTTP listener is the one New opens itself.
		return fmt.Errorf("http.listen %s: %s", quoteOdd(cfg.HTTP.Listen), listenReason(err))
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if path == "" {
		log.Info("running the embedded default: drop files into ./assets; `syncer events tail` shows the events",
			"nats", "nats://"+cfg.NATS.Listen, "subject", cfg.NATS.SubjectPrefix+".assets")
	}
	err = w.Run(ctx)
	log.Info("stopped")
	return err
}

// checkPorts tries the addresses run is going to listen on, so a port in
// use fails at once with the config field that names it, instead of deep
// in start-up (the embedded NATS server would only time out).
func checkPorts(cfg *config.Config) error {
	if cfg.HTTP.Listen != "off" {
		if err := tryListen("http.listen", cfg.HTTP.Listen); err != nil {
			return err
		}
	}
	if cfg.NATS.URL == "embedded" {
		if err := tryListen("nats.listen", cfg.NATS.Listen); err != nil {
			return err
		}
	}
	return nil
}

func tryListen(field, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %s", field, quoteOdd(addr), listenReason(err))
	}
	return l.Close()
}

// quoteOdd quotes an address unless it looks like host:port, so that
// `http.listen "8080"` shows what was written.
func quoteOdd(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil || addr == "" {
		return fmt.Sprintf("%q", addr)
	}
	return addr
}

// listenReason is why net.Listen failed, without the repeated
// "listen tcp 127.0.0.1:8080: bind:" chain.
func listenReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ae *net.AddrError
	if errors.As(err, &ae) {
		if strings.Contains(ae.Err, "port") {
			return ae.Err + " (want host:port, e.g. 127.0.0.1:8080)"
		}
		return ae.Err
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	return err.Error()
}

func newScanCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path, id string
		o        scanFlags
		remote   remoteFlags
	)
	c := &cobra.Command{
		Use:   "scan (--config FILE | --url URL) --source ID",
		Short: "Reconcile one source once, then publish its changes",
		Long: `Reconcile one source once: list it, diff the listing against the catalog and commit the changes,
with progress on stderr and a summary on stdout. The changes are published to NATS while the scan
goes on (the rest once it ends), unless --publish=false leaves them in the outbox for the next run. Exits non-zero on failure; a failed
listing applies no deletions. The worker must not be running on the same catalog.

A scan whose deletions exceed the source's guard (guard.maxDeletePercent, guard.maxDeletes; an
empty listing of a non-empty source always) is held: its additions and modifications apply, its
deletions do not, and it exits non-zero. --allow-mass-delete lifts the guard for this one scan.

A first scan that was killed or failed resumes its listing after the last key it committed.

--url asks a running worker to scan now instead (POST /admin/sources/ID/scan, authenticated by
one of http.auth.adminTokens from --token or $SYNCER_TOKEN); the worker publishes the changes.`,
		Example: `  syncer scan --config syncer.yaml --source cloud-images
  syncer scan --config syncer.yaml --source cloud-images --publish=false
  syncer scan --config syncer.yaml --source cloud-images --allow-mass-delete
  SYNCER_TOKEN=… syncer scan --url http://127.0.0.1:8080 --source cloud-images --allow-mass-delete`,
		RunE: func(c *cobra.Command, _ []string) error {
			if remote.url != "" {
				if path != "" {
					return usagef("give --config or --url, not both")
				}
				if id == "" {
					return usagef("--source is required")
				}
				return remoteScan(c.Context(), remote.client(nil), id, o.allowMassDelete, stdout, stderr)
			}
			stop, err := profileCPU(o.cpuProfile)
			if err != nil {
				return err
			}
			defer stop()
			return cmdScan(c.Context(), path, id, o, &remote, stdout, stderr)
		},
	}
	c.Flags().StringVar(&path, "config", "", "configuration file (required unless --url is given)")
	c.Flags().StringVar(&id, "source", "", "id of the source to scan (required)")
	c.Flags().BoolVar(&o.publish, "publish", true, "publish the changes to NATS during and after the scan (false: they wait in the outbox for syncer run)")
	c.Flags().BoolVar(&o.allowMassDelete, "allow-mass-delete", false, "apply this scan's deletions even beyond the source's guard (releases a held scan)")
	c.Flags().StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the scan to this file (for benchmarks)")
	remote.register(c, "ask the worker at this URL (e.g. http://127.0.0.1:8080) to scan, instead of opening the catalog")
	return c
}

type scanFlags struct {
	publish, allowMassDelete bool
	cpuProfile               string
}

// scanSummary is the one format of a scan's summary line, local or remote.
func scanSummary(id string, listed, matched, added, modified, deleted int, d time.Duration) string {
	return fmt.Sprintf("scan %s: %d listed, %d matched, %d added, %d modified, %d deleted in %s",
		id, listed, matched, added, modified, deleted, d.Round(time.Millisecond))
}

// remoteScan asks a running worker to scan source id now.
func remoteScan(ctx context.Context, cl *client, id string, allowMassDelete bool, stdout, stderr io.Writer) error {
	res, err := cl.scan(ctx, id, allowMassDelete)
	if err != nil {
		return err
	}
	summary := scanSummary(id, res.Listed, res.Matched, res.Added, res.Modified, res.Deleted,
		time.Duration(res.DurationSeconds*float64(time.Second)))
	switch res.Result {
	case schedule.ResultOK:
		fmt.Fprintln(stdout, summary)
		return nil
	case schedule.ResultHeld:
		fmt.Fprintln(stdout, summary, "— deletions HELD")
		return fmt.Errorf("scan %s %s", id, res.Error)
	default:
		fmt.Fprintln(stderr, summary, "— FAILED, no deletions applied")
		return fmt.Errorf("scan %s %s: %s", id, res.Result, res.Error)
	}
}

func cmdScan(ctx context.Context, path, id string, o scanFlags, remote *remoteFlags, stdout, stderr io.Writer) error {
	if path == "" {
		return usagef("--config is required")
	}
	cfg, src, err := loadSource(path, id)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	cat, err := worker.OpenCatalog(ctx, cfg.Catalog, slog.Default())
	if err != nil {
		if cl := remote.client(cfg); cl != nil && errors.Is(err, catalog.ErrLocked) {
			// The worker holds the catalog: it is the one to scan.
			if rerr := remoteScan(ctx, cl, id, o.allowMassDelete, stdout, stderr); rerr != nil {
				return fmt.Errorf("%w; asking its worker: %w", err, rerr)
			}
			return nil
		}
		return err
	}
	defer cat.Close()
	p, err := worker.OpenProvider(ctx, kinds.All(), *src)
	if err != nil {
		return err
	}
	defer p.Close()
	cs := cat.Source(src.ID, p.Order()).Indexed(src.Assets.Index)
	if err := cs.CheckOrder(ctx); err != nil {
		return err
	}

	var pub *scanPublisher
	if o.publish {
		// Publishing runs beside the scan, as under `syncer run`, so
		// that the end of the scan leaves only its last batch to publish.
		pub = startPublishing(ctx, cfg, cat, cs, log, stdout)
	}
	last := time.Now()
	res, err := schedule.Reconcile(ctx, schedule.Target{
		ID: src.ID, Provider: p, Filter: worker.Filter(*src), Catalog: cs, Guard: worker.Guard(*src),
		ListConcurrency: worker.ListConcurrency(*src, kindOf(*src)),
	}, schedule.Options{SpillDir: cfg.Catalog.Path, AllowMassDelete: o.allowMassDelete, OnPage: func(pr schedule.Progress) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "scan %s: %d listed, %d matched, +%d ~%d -%d\n", src.ID, pr.Listed, pr.Matched, pr.Added, pr.Modified, pr.Deleted)
		}
	}})
	summary := scanSummary(src.ID, res.Listed, res.Matched, res.Added, res.Modified, res.Deleted, res.Duration)
	if err != nil {
		fmt.Fprintln(stderr, summary, "— FAILED, no deletions applied")
		pub.stop()
		return err
	}
	if res.IndexBuild > 0 {
		fmt.Fprintf(stderr, "scan %s: asset indexes built in %s (part of the scan's time)\n", src.ID, res.IndexBuild.Round(time.Millisecond))
	}
	if res.ResumedAfter != "" {
		fmt.Fprintf(stderr, "scan %s: resumed an interrupted first listing after %q (no deletions from a resumed listing)\n", src.ID, res.ResumedAfter)
	}
	if res.Held != nil {
		fmt.Fprintln(stdout, summary, "— deletions HELD")
		log.Warn("scan held by the mass-deletion guard: additions and modifications applied, deletions not",
			"source", src.ID, "wouldDelete", res.Held.WouldDelete, "of", res.Held.Of,
			"maxDeletePercent", res.Held.Guard.MaxDeletePercent, "maxDeletes", res.Held.Guard.MaxDeletes)
	} else {
		fmt.Fprintln(stdout, summary)
	}
	if err := pub.finish(); err != nil {
		return err
	}
	if res.Held != nil {
		// After publishing what did apply: a held scan needs an operator.
		return fmt.Errorf("scan %s %s", src.ID, res.Held.Error())
	}
	return nil
}

// remoteFlags are the flags of commands that can ask a running worker.
type remoteFlags struct {
	url, token string
}

func (r *remoteFlags) register(c *cobra.Command, urlUsage string) {
	c.Flags().StringVar(&r.url, "url", "", urlUsage)
	c.Flags().StringVar(&r.token, "token", "", "bearer token for the worker's HTTP API (default: $SYNCER_TOKEN)")
}

// client is the worker client for an explicit --url, or for the worker
// that holds a locked catalog (nil when the config gives no listener).
func (r *remoteFlags) client(cfg *config.Config) *client {
	if r.url != "" {
		return newClient(r.url, r.token)
	}
	if cfg == nil || cfg.HTTP.Listen == "off" {
		return nil
	}
	return newClient(urlFromListen(cfg.HTTP.Listen), r.token)
}

func newConfigCheckCmd(stdout io.Writer) *cobra.Command {
	var (
		path    string
		connect bool
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "check --config FILE [--connect]",
		Short: "Validate a configuration file, and with --connect reach everything it names",
		Long: `Validate a configuration file: its syntax, unknown keys, types and every value. Each problem
is named by its field path.

With --connect it also reaches everything the file names, reading only: per source it lists one
page and stats one key; per notification transport it checks the queue or subscription and the
permission to consume it; it connects to NATS and looks up the stream. It prints one line per
check and exits 1 if any failed. Nothing is created, received, deleted or published.`,
		Example: `  syncer config check --config syncer.yaml
  syncer config check --config syncer.yaml --connect`,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: ok, %d sources\n", path, len(cfg.Sources))
			if !connect {
				return nil
			}
			ctx, cancel := context.WithTimeout(c.Context(), timeout)
			defer cancel()
			return worker.Check(ctx, cfg, kinds.All(), stdout)
		},
	}
	c.Flags().StringVar(&path, "config", "", "configuration file (required)")
	c.Flags().BoolVar(&connect, "connect", false, "also reach every store, queue and NATS the file names (reads only)")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "with --connect, give up on all checks after this long")
	return c
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version, VCS revision and Go version syncer was built from",
		Example: `  syncer version`,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(stdout, "syncer", buildinfo.Read())
		},
	}
}

// kindOf is src's kind in this build's registry.
func kindOf(src config.Source) providers.Descriptor {
	d, _ := kinds.All().Lookup(src.Provider)
	return d
}
