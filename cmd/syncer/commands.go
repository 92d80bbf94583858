package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/schedule"
	"github.com/imgly/syncer/worker"
)

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// defaultConfig is what `syncer run` does without a config: watch ./assets,
// publish to an embedded NATS on the standard port.
func defaultConfig() (*config.Config, error) {
	return config.Parse([]byte(`
nats: {url: embedded, listen: "127.0.0.1:4222"}
catalog: {path: ./data}
http: {listen: "127.0.0.1:8080"}
sources:
  - id: assets
    provider: local
    path: ./assets
    schedule: "@every 2s"
`), func(string) (string, bool) { return "", false })
}

// loadSource loads the configuration at path and returns it with its
// source id.
func loadSource(path, id string) (*config.Config, *config.Source, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	for i := range cfg.Sources {
		if cfg.Sources[i].ID == id {
			return cfg, &cfg.Sources[i], nil
		}
	}
	return nil, nil, &exitError{2, fmt.Errorf("--source %q is not in %s", id, path)}
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, &exitError{2, errors.New("--config is required")}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, &exitError{2, err}
	}
	return cfg, nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Level)) //nolint:errcheck // validated
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("config", "", "configuration file (default: the embedded default over ./assets)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var (
		cfg *config.Config
		err error
	)
	if *path == "" {
		cfg, err = defaultConfig()
	} else {
		cfg, err = loadConfig(*path)
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	w, err := worker.New(ctx, cfg, worker.Options{Log: log})
	if err != nil {
		return err
	}
	defer w.Close()
	if *path == "" {
		log.Info("running the embedded default: drop files into ./assets; `syncer events tail` shows the events",
			"nats", "nats://"+cfg.NATS.Listen, "subject", cfg.NATS.SubjectPrefix+".assets")
	}
	err = w.Run(ctx)
	log.Info("stopped")
	return err
}

func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("scan", stderr)
	path := fs.String("config", "", "configuration file")
	id := fs.String("source", "", "source id")
	publish := fs.Bool("publish", true, "publish the changes to NATS after the scan (otherwise they wait in the outbox for `run`)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, src, err := loadSource(*path, *id)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	cat, err := catalog.Open(cfg.Catalog.Path)
	if err != nil {
		return err
	}
	defer cat.Close()
	p, err := worker.OpenProvider(ctx, *src)
	if err != nil {
		return err
	}
	defer p.Close()
	cs := cat.Source(src.ID, p.Order())

	last := time.Now()
	res, err := schedule.Reconcile(ctx, schedule.Target{
		ID: src.ID, Provider: p, Filter: worker.Filter(*src), Catalog: cs,
	}, schedule.Options{SpillDir: cfg.Catalog.Path, OnPage: func(pr schedule.Progress) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "scan %s: %d listed, %d matched, +%d ~%d -%d\n", src.ID, pr.Listed, pr.Matched, pr.Added, pr.Modified, pr.Deleted)
		}
	}})
	summary := fmt.Sprintf("scan %s: %d listed, %d matched, %d added, %d modified, %d deleted in %s",
		src.ID, res.Listed, res.Matched, res.Added, res.Modified, res.Deleted, res.Duration.Round(time.Millisecond))
	if err != nil {
		fmt.Fprintln(stderr, summary, "— FAILED, no deletions applied")
		return err
	}
	fmt.Fprintln(stdout, summary)
	if !*publish {
		return nil
	}
	return flushOutbox(ctx, cfg, cat, cs, log, stdout)
}

// flushOutbox publishes what the scan left in the outbox.
func flushOutbox(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, cs *catalog.Source, log *slog.Logger, stdout io.Writer) error {
	nc, embedded, err := worker.ConnectNATS(cfg.NATS, "syncer-scan", log)
	if err != nil {
		return err
	}
	defer embedded.Shutdown() // after the connection closes
	defer nc.Close()
	n := 0
	pub, err := events.NewPublisher(nc, events.Options{
		Stream: cfg.NATS.Stream, SubjectPrefix: cfg.NATS.SubjectPrefix, MaxChanges: cfg.Events.MaxChanges,
		Instance: cat.InstanceID(), Log: log, OnPublish: func(events.CloudEvent) { n++ },
	})
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := pub.EnsureStream(fctx); err != nil {
		return err
	}
	if err := pub.Flush(fctx, cs); err != nil {
		return fmt.Errorf("publish (the changes stay in the outbox for the next run): %w", err)
	}
	fmt.Fprintf(stdout, "published %d events\n", n)
	return nil
}

func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("events tail", stderr)
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	stream := fs.String("stream", config.DefaultStream, "JetStream stream")
	prefix := fs.String("subject-prefix", config.DefaultSubjectPrefix, "subject prefix")
	source := fs.String("source", "", "only this source's events")
	all := fs.Bool("all", false, "start at the first event the stream holds, not the next one")
	count := fs.Int("n", 0, "exit after this many events (0: run until interrupted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	nc, err := worker.Connect(*url, config.NATS{}, "syncer-tail", newLogger(config.Log{Level: "warn", Format: "text"}, stderr))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	subject := *prefix + ".>"
	if *source != "" {
		subject = events.Subject(*prefix, *source)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if *all {
		occ.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	var cons jetstream.Consumer
	for {
		cons, err = js.OrderedConsumer(ctx, *stream, occ)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) || ctx.Err() != nil {
			return fmt.Errorf("subscribe to %s: %w", *stream, err)
		}
		select { // syncer creates the stream when it starts
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	enc := json.NewEncoder(stdout)
	for n := 0; *count == 0 || n < *count; n++ {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		var ev json.RawMessage = msg.Data()
		if err := enc.Encode(ev); err != nil {
			return err
		}
	}
	return nil
}

func cmdCatalogLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("catalog ls", stderr)
	path := fs.String("config", "", "configuration file")
	id := fs.String("source", "", "source id")
	prefix := fs.String("prefix", "", "only keys with this prefix")
	limit := fs.Int("limit", 0, "at most this many (0: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, src, err := loadSource(*path, *id)
	if err != nil {
		return err
	}
	cat, err := catalog.Open(cfg.Catalog.Path)
	if err != nil {
		return err
	}
	defer cat.Close()
	cs := cat.Source(src.ID, worker.OrderOf(src.Provider))
	n := 0
	enc := json.NewEncoder(stdout)
	emit := func(e catalog.Entry) error {
		if *limit > 0 && n >= *limit {
			return catalog.ErrStop
		}
		n++
		return enc.Encode(e)
	}
	// The keys with the prefix are the prefix itself, if it is a key, and
	// those right after it: start there rather than at the first key.
	if *prefix != "" {
		e, ok, err := cs.Get(ctx, *prefix)
		if err != nil {
			return err
		}
		if ok {
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	return cs.Range(ctx, *prefix, func(e catalog.Entry) error {
		if !strings.HasPrefix(e.Key, *prefix) {
			return catalog.ErrStop
		}
		return emit(e)
	})
}

func cmdCatalogStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("catalog stats", stderr)
	path := fs.String("config", "", "configuration file")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	cat, err := catalog.Open(cfg.Catalog.Path)
	if err != nil {
		return err
	}
	defer cat.Close()
	for _, s := range cfg.Sources {
		st, err := cat.Source(s.ID, worker.OrderOf(s.Provider)).Stats(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\tobjects=%d\tlastSeq=%d\tunpublished=%d\n", s.ID, st.Objects, st.LastSeq, st.Pending)
	}
	return nil
}

func cmdConfigCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("config check", stderr)
	path := fs.String("config", "", "configuration file")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok, %d sources\n", *path, len(cfg.Sources))
	return nil
}
