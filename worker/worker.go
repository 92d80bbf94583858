// Package worker wires syncer together from its configuration: providers,
// catalog, scheduler, notification consumers, publisher and the HTTP side.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/live"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/kinds"
	"github.com/imgly/syncer/schedule"
)

// Options are the parts of a worker that do not come from the config file.
type Options struct {
	Log *slog.Logger
	// OnPublish, if set, sees every event after JetStream acknowledged it.
	OnPublish func(events.CloudEvent)
	// FlushTimeout bounds the outbox flush at shutdown.
	FlushTimeout time.Duration
	// HTTP bounds the HTTP listener (zero fields: the defaults).
	HTTP HTTPLimits
	// Kinds are the provider kinds sources are opened with (nil: every
	// kind of this build, kinds.All()).
	Kinds *providers.Registry
	// SSEHeartbeat is the interval of the event streams' heartbeat
	// comments (0: live.DefaultHeartbeat); tests shorten it.
	SSEHeartbeat time.Duration
	// OnWatching, if set, is called once a local source's directory watch
	// is in place (changes from then on are seen as they happen).
	OnWatching func(source string)
	// Replica is this process's id among replicas sharing a PostgreSQL
	// catalog ("" : POD_NAME, else the host name; see ReplicaID).
	Replica string
	// LeaseTTL and LeaseRenew time the sources' leases with a shared
	// catalog (zero: ownership.DefaultTTL, DefaultRenew).
	LeaseTTL, LeaseRenew time.Duration
}

// Source is one configured source, opened.
type Source struct {
	Config   config.Source
	Provider providers.Provider
	Catalog  *catalog.Source
	// Kind is the source as its provider kind configured it (bucket,
	// location, typed settings).
	Kind providers.Configured
}

// Consumer is a notification consumer (SQS, Pub/Sub, Storage Queue).
type Consumer interface {
	Run(ctx context.Context) error
}

// Worker is a running syncer.
type Worker struct {
	cfg *config.Config
	log *slog.Logger
	reg *prometheus.Registry

	cat      *catalog.Catalog
	sources  []*Source
	embedded *Embedded
	nc       *nats.Conn
	// natsClosed is closed when the NATS connection is closed for good.
	natsClosed <-chan struct{}
	pub        *events.Publisher
	sched      *schedule.Scheduler
	// scanMetrics are shared by w.sched and, with ownership, the scheduler
	// of each lease this replica acquires.
	scanMetrics *schedule.Metrics
	router      *notify.Router

	consumers map[string]Consumer
	webhooks  map[string]http.Handler // pattern -> handler
	listener  net.Listener
	opts      Options

	watchFallbacks *prometheus.CounterVec // local watches' fallback scans (localwatch.go)

	notifiers []*notifier
	auth      authPolicy
	admin     authPolicy // never open: see newAdminPolicy
	assets    *assetsource.Server
	live      *live.Server
	started   time.Time
	serving   atomic.Bool

	mu            sync.Mutex
	consumerState map[string]*consumerState

	replica string
	ha      *ha // nil with the embedded catalog: this process owns every source
}

// New opens everything cfg describes. Close releases it.
func New(ctx context.Context, cfg *config.Config, opts Options) (w *Worker, err error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.FlushTimeout == 0 {
		opts.FlushTimeout = 10 * time.Second
	}
	if opts.Kinds == nil {
		opts.Kinds = kinds.All()
	}
	if opts.HTTP.MaxConns == 0 {
		opts.HTTP.MaxConns = cfg.HTTP.MaxConns
	}
	w = &Worker{
		cfg: cfg, log: opts.Log, reg: prometheus.NewRegistry(), opts: opts,
		consumers: map[string]Consumer{}, webhooks: map[string]http.Handler{}, consumerState: map[string]*consumerState{},
		started: time.Now(), auth: newAuthPolicy(cfg.HTTP.Auth.Tokens, cfg.HTTP.Listen),
		admin: newAdminPolicy(cfg.HTTP.Auth.AdminTokens),
	}
	// Each failing return below sets the named result w to nil, so the
	// deferred cleanup must close the worker built so far, not w.
	built := w
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	w.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.HTTP.Listen != "off" && !w.auth.open && len(w.auth.tokens) == 0 {
		w.log.Warn("http.listen is not loopback and http.auth.tokens is empty: /status and /catalog answer 401 to everyone",
			"listen", cfg.HTTP.Listen)
	}

	if w.cat, err = OpenCatalog(ctx, cfg.Catalog, w.log); err != nil {
		return nil, err
	}
	if err := w.openSources(ctx); err != nil {
		return nil, err
	}
	if err := w.connect(); err != nil {
		return nil, err
	}
	if err := w.newScheduler(); err != nil {
		return nil, err
	}
	w.setupHA()
	if w.assets, err = w.newAssets(); err != nil {
		return nil, err
	}
	if w.live, err = w.newLive(); err != nil {
		return nil, err
	}
	if err := w.registerMetrics(); err != nil {
		return nil, err
	}
	if cfg.HTTP.Listen != "off" {
		if w.listener, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return nil, fmt.Errorf("http: listen %s: %w", cfg.HTTP.Listen, err)
		}
	}
	return w, nil
}

// openSources opens every configured source and routes its notifications
// and directory watches to it.
func (w *Worker) openSources(ctx context.Context) (err error) {
	cfg := w.cfg
	var routes []notify.Route
	for i, sc := range cfg.Sources {
		s, err := w.openSource(ctx, sc, fmt.Sprintf("sources[%d]", i))
		if err != nil {
			return err
		}
		w.sources = append(w.sources, s)
		// Notifications name a bucket; a kind without one (local) gets its
		// directory watch's (localwatch.go).
		bucket := s.Kind.Bucket
		if bucket == "" {
			bucket = localBucket(sc.ID)
		}
		routes = append(routes, notify.Route{
			SourceID: sc.ID, Provider: sc.Provider, Bucket: bucket,
			Filter: Filter(sc), Store: s.Provider, Catalog: s.Catalog,
		})
	}
	if w.router, err = notify.NewRouter(routes, notify.RouterOptions{
		StatRate: cfg.Notify.StatRate, StatBurst: cfg.Notify.StatBurst, StatConcurrency: cfg.Notify.StatConcurrency,
		VerifyAfter: cfg.Notify.VerifyAfter,
		Log:         w.log, Registerer: w.reg,
	}); err != nil {
		return err
	}
	if w.watchFallbacks, err = newWatchFallbacks(w.reg); err != nil {
		return err
	}
	for _, s := range w.sources {
		if err := w.addNotifications(ctx, s); err != nil {
			return fmt.Errorf("source %s: notifications: %w", s.Config.ID, err)
		}
		if s.Config.Watching(w.kindOf(s.Config)) {
			if err := w.addLocalWatch(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// connect connects to NATS (starting the embedded server if so
// configured) and builds the publisher on that connection.
func (w *Worker) connect() (err error) {
	cfg := w.cfg
	if w.nc, w.embedded, err = ConnectNATS(cfg.NATS, "syncer", w.log); err != nil {
		return err
	}
	w.natsClosed = closedSignal(w.nc)
	if w.embedded != nil {
		w.log.Info("embedded NATS with JetStream", "url", w.embedded.URL(), "store", cfg.NATS.StoreDir)
		if cfg.NATS.Websocket.Enabled() {
			w.log.Info("embedded NATS WebSocket for browsers (read-only)", "url", w.embedded.Server.WebsocketURL())
		}
	}
	w.pub, err = events.NewPublisher(w.nc, events.Options{
		Stream: cfg.NATS.Stream, SubjectPrefix: cfg.NATS.SubjectPrefix,
		Domain: cfg.NATS.JSDomain, Replicas: cfg.NATS.Replicas,
		Window: cfg.Events.CoalesceWindow, MaxChanges: cfg.Events.MaxChanges,
		Instance: w.cat.InstanceID(), Log: w.log, Registerer: w.reg, OnPublish: w.opts.OnPublish,
	})
	return err
}

// newScheduler schedules every source's listings.
func (w *Worker) newScheduler() (err error) {
	var jobs []schedule.Job
	for _, s := range w.sources {
		jobs = append(jobs, schedule.Job{Spec: s.Config.Schedule, Target: schedule.Target{
			ID: s.Config.ID, Provider: s.Provider, Filter: Filter(s.Config), Catalog: s.Catalog, Guard: Guard(s.Config),
			ListConcurrency: w.listConcurrency(s.Config), ProbeListing: w.probeListing(s.Config),
		}})
	}
	if w.scanMetrics, err = schedule.NewMetrics(w.reg); err != nil {
		return err
	}
	w.sched, err = w.scanMetrics.NewScheduler(jobs, schedule.Options{SpillDir: w.cfg.Catalog.Path}, w.log)
	return err
}

// Sources are the opened sources.
func (w *Worker) Sources() []*Source { return w.sources }

// HTTPAddr is the address the HTTP side listens on ("" when off).
func (w *Worker) HTTPAddr() string {
	if w.listener == nil {
		return ""
	}
	return w.listener.Addr().String()
}

// ErrNATSClosed is what Run returns when the NATS connection was closed for
// good: nats.go no longer reconnects, and only a restart brings it back.
var ErrNATSClosed = errors.New("nats: connection closed for good")

// Run runs until ctx is cancelled: it stops scheduling, lets the current
// scans end safely (no deletions from an interrupted listing), flushes the
// publisher and returns nil. It stops the same way, returning an error, when
// the NATS connection is closed for good or the stream is configured so
// that syncer cannot publish to it: a supervisor's restart is then the
// way back.
func (w *Worker) Run(ctx context.Context) error {
	parent := ctx
	ctx, fail := context.WithCancelCause(parent)
	defer fail(nil)
	go func() {
		select {
		case <-ctx.Done():
		case <-w.natsClosed:
			fail(fmt.Errorf("%w (%v); exiting so that a restart reconnects", ErrNATSClosed, w.nc.LastError()))
		}
	}()
	var srv *http.Server
	if w.listener != nil {
		var limit func(net.Listener) net.Listener
		srv, limit = newServer(w.Handler(), w.opts.HTTP)
		srv.RegisterOnShutdown(w.live.Close) // event streams never end by themselves
		w.serving.Store(true)
		go func() {
			defer w.serving.Store(false)
			if err := srv.Serve(limit(w.listener)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("http server failed", "err", err)
			}
		}()
		w.log.Info("http listening", "addr", w.listener.Addr().String())
	}

	var wg sync.WaitGroup
	for name, c := range w.consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runConsumer(ctx, name, c)
		}()
	}
	outboxes := make([]events.Outbox, len(w.sources))
	for i, s := range w.sources {
		outboxes[i] = s.Catalog
	}
	pubDone := make(chan struct{})
	// The publisher outlives the scans so it can flush what they commit
	// while stopping.
	pctx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(pubDone)
		// Here rather than before the rest starts: with NATS away this
		// waits, and health, webhooks and scans must not wait with it.
		sctx, cancel := context.WithTimeout(pctx, 30*time.Second)
		if err := w.pub.EnsureStream(sctx); errors.Is(err, events.ErrStreamUnusable) {
			cancel()
			fail(err)
			return
		} else if err != nil {
			// Not fatal: a publish that finds no stream creates it, and
			// the outbox keeps the events meanwhile.
			w.log.Warn("stream not ensured yet; publishing will retry", "stream", w.cfg.NATS.Stream, "err", err)
		}
		cancel()
		if w.ha != nil {
			return // each source's owner publishes it (ha.go)
		}
		w.pub.Run(pctx, outboxes, w.opts.FlushTimeout)
	}()

	if w.ha != nil {
		w.ha.mgr.Run(ctx) // returns once the owned sources stopped and were released
	} else {
		w.sched.Run(ctx) // returns once ctx is done and scans have stopped
	}
	wg.Wait()
	stopPub()
	<-pubDone
	if srv != nil {
		sdctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sdctx) //nolint:errcheck // best effort at exit
	}
	if cause := context.Cause(ctx); cause != nil && cause != context.Cause(parent) { //nolint:errorlint // identity: was it our fail
		return cause
	}
	return nil
}

// restartBackoff bounds the wait before a stopped notification consumer is
// restarted: 1 s doubling to 1 min, jittered so that the consumers of one
// failing cloud (and the workers sharing it) do not restart in step.
var restartBackoff = retry.Policy{Min: time.Second, Max: time.Minute}

func (w *Worker) runConsumer(ctx context.Context, name string, c Consumer) {
	backoff := restartBackoff.Start()
	for ctx.Err() == nil {
		// A consumer that stays up for a backoff period (the ceiling of
		// the wait a failure now would cost) has recovered: a later
		// failure starts the backoff (and the count towards "failed")
		// over.
		period := backoff.Ceiling()
		started := time.Now()
		w.consumerRunning(name)
		recovered := time.AfterFunc(period, func() { w.consumerRecovered(name) })
		err := c.Run(ctx)
		recovered.Stop()
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= period {
			backoff.Reset()
		}
		w.consumerFailed(name)
		wait := backoff.Next()
		w.log.Error("notification consumer stopped; restarting", "consumer", name, "err", err, "in", wait)
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
}

// Close releases everything New opened. It is safe on a nil or partially
// built worker.
func (w *Worker) Close() {
	if w == nil {
		return
	}
	if w.listener != nil {
		w.listener.Close()
	}
	if w.live != nil {
		w.live.Close()
	}
	if w.nc != nil {
		// Run has flushed the publisher; nothing is left to drain.
		w.nc.Close()
	}
	w.embedded.Shutdown()
	for _, c := range w.consumers {
		if cl, ok := c.(interface{ Close() error }); ok {
			cl.Close()
		}
	}
	for _, s := range w.sources {
		if s.Provider != nil {
			s.Provider.Close()
		}
	}
	if w.cat != nil {
		w.cat.Close()
	}
}

// Scan reconciles source id now (unless its reconciliation is running) and
// returns what it found. The changes are published by Run's publisher.
func (w *Worker) Scan(ctx context.Context, id string) (schedule.Result, error) {
	return w.scanWith(ctx, id, schedule.ScanOptions{})
}

// ScanWith is Scan with options (AllowMassDelete lifts the source's guard
// for this scan only).
func (w *Worker) ScanWith(ctx context.Context, id string, o schedule.ScanOptions) (schedule.Result, error) {
	return w.scanWith(ctx, id, o)
}

// Guard is the scan guard of a configured source.
func Guard(sc config.Source) *schedule.Guard {
	return &schedule.Guard{MaxDeletePercent: sc.Guard.Percent(), MaxDeletes: sc.Guard.MaxDeletes}
}
