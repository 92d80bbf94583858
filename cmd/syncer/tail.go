package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/providers/kinds"
	"github.com/imgly/syncer/worker"
)

type tailOptions struct {
	config, url, stream, prefix, source, since string
	all                                        bool
	count                                      int
	// nats holds the config's NATS security settings (TLS, credentials),
	// if --config gave one.
	nats config.NATS
}

func newTailCmd(stdout, stderr io.Writer) *cobra.Command {
	var o tailOptions
	c := &cobra.Command{
		Use:   "tail [--nats URL | --config FILE] [--source ID] [--all | --since WHEN] [-n N]",
		Short: "Follow the events on NATS, printing one JSON event per line",
		Long: `Follow the contents-changed events on NATS JetStream and print each as one JSON line on stdout,
until interrupted (SIGINT or SIGTERM, exit 0) or until -n events were printed. There is no idle
timeout; a lost connection to NATS is re-established, and a server or stream that is not there
yet is waited for.

By default it starts with the next event; --all starts at the first event the stream holds,
--since at the first event published at or after a time (an RFC 3339 timestamp, or a duration
back from now such as 10m).`,
		Example: `  syncer events tail
  syncer events tail --source cloud-images --all -n 10
  syncer events tail --config syncer.yaml --since 1h
  syncer events tail --nats nats://nats.example:4222 --since 2026-12-01T09:00:00Z`,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.resolve(c); err != nil {
				return err
			}
			return cmdTail(c.Context(), o, stdout, stderr)
		},
	}
	f := c.Flags()
	f.StringVar(&o.url, "nats", "nats://127.0.0.1:4222", "NATS server URL")
	f.StringVar(&o.config, "config", "", "take the NATS URL, stream and subject prefix from this configuration file")
	f.StringVar(&o.stream, "stream", config.DefaultStream, "JetStream stream")
	f.StringVar(&o.prefix, "subject-prefix", config.DefaultSubjectPrefix, "subject prefix")
	f.StringVar(&o.source, "source", "", "only this source's events")
	f.BoolVar(&o.all, "all", false, "start at the first event the stream holds, not the next one")
	f.StringVar(&o.since, "since", "", "start at the first event published since this time: RFC 3339 or a duration ago, e.g. 10m")
	f.IntVarP(&o.count, "count", "n", 0, "exit after this many events (0: follow until interrupted)")
	return c
}

// resolve fills in what --config gives, flags given on the command line
// taking precedence, and checks the flags that depend on each other.
func (o *tailOptions) resolve(c *cobra.Command) error {
	if o.all && o.since != "" {
		return usagef("--all and --since exclude each other")
	}
	if o.count < 0 {
		return usagef("-n must not be negative")
	}
	if o.since != "" {
		if _, err := parseSince(o.since, time.Now()); err != nil {
			return &usageError{err}
		}
	}
	if o.config == "" {
		return nil
	}
	cfg, err := config.LoadFor(o.config, kinds.All())
	if err != nil {
		return err
	}
	if !c.Flags().Changed("nats") {
		o.url = cfg.NATS.URL
		if o.url == "embedded" {
			o.url = "nats://" + loopback(cfg.NATS.Listen)
		}
	}
	o.nats = cfg.NATS
	if !c.Flags().Changed("stream") {
		o.stream = cfg.NATS.Stream
	}
	if !c.Flags().Changed("subject-prefix") {
		o.prefix = cfg.NATS.SubjectPrefix
	}
	return nil
}

// parseSince reads --since: an RFC 3339 time or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-12-01T09:00:00Z) or a duration ago (10m, 1h30m)", s)
	}
	return now.Add(-d), nil
}

func cmdTail(ctx context.Context, o tailOptions, stdout, stderr io.Writer) error {
	nc, err := worker.Connect(o.url, o.nats, "syncer-tail", newLogger(config.Log{Level: "warn", Format: "text"}, stderr))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// nil: ctx ended while waiting.
	cons := waitConsumer(ctx, js, o, stderr)
	if cons == nil {
		return nil
	}

	// The ordered consumer's iterator recreates its server-side consumer
	// after a lost connection or missed heartbeats, resuming after the
	// last event printed, so following survives NATS restarts.
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", o.stream, err)
	}
	stopped := context.AfterFunc(ctx, it.Stop)
	defer stopped()
	defer it.Stop()

	enc := json.NewEncoder(stdout)
	lastErr := ""
	for n := 0; o.count == 0 || n < o.count; {
		msg, err := it.Next()
		if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil
		}
		if err != nil {
			// Transient (the iterator resets itself); say so once, and do
			// not spin while it recovers.
			if err.Error() != lastErr {
				lastErr = err.Error()
				fmt.Fprintf(stderr, "syncer: events tail: %v (retrying)\n", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		lastErr = ""
		if err := enc.Encode(json.RawMessage(msg.Data())); err != nil {
			return fmt.Errorf("write event: %w", err)
		}
		n++
	}
	return nil
}

// consumerConfig is the ordered consumer o asks for: the source's subject
// (or all of them), from now, the start or o.since.
func (o tailOptions) consumerConfig() jetstream.OrderedConsumerConfig {
	subject := o.prefix + ".>"
	if o.source != "" {
		subject = events.Subject(o.prefix, o.source)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	switch {
	case o.all:
		occ.DeliverPolicy = jetstream.DeliverAllPolicy
	case o.since != "":
		start, _ := parseSince(o.since, time.Now()) // checked in resolve
		occ.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		occ.OptStartTime = &start
	}
	return occ
}

// waitConsumer waits for the server and the stream: syncer creates the
// stream when it starts, and the tail may well be started first. It
// returns nil when ctx ends first.
func waitConsumer(ctx context.Context, js jetstream.JetStream, o tailOptions, stderr io.Writer) jetstream.Consumer {
	occ := o.consumerConfig()
	waiting := ""
	for {
		cons, err := js.OrderedConsumer(ctx, o.stream, occ)
		if err == nil {
			return cons
		}
		if ctx.Err() != nil {
			return nil
		}
		if why := tailWaitReason(err); why != waiting {
			waiting = why
			fmt.Fprintf(stderr, "syncer: events tail: waiting for stream %s at %s (%s)\n", o.stream, o.url, why)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func tailWaitReason(err error) string {
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return "no such stream yet"
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "no responders"),
		strings.Contains(err.Error(), "timeout"):
		return "NATS not reachable yet"
	}
	return err.Error()
}
