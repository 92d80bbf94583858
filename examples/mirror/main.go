// Command mirror keeps a copy of one syncer source — the shape of a search
// index or a CDN purge list fed by syncer — with the recipe "snapshot, then
// stream" (README.md): page the source through the asset API by cursor,
// then consume its JetStream subject from before the snapshot, skipping the
// changes the snapshot already holds.
//
//	go run ./examples/mirror -api http://127.0.0.1:8080 -source cloud-images \
//	  -nats nats://127.0.0.1:4222 [-stream SYNCER] [-subject-prefix syncer.changed] [-token T]
//
// On SIGINT or SIGTERM it prints the mirror as JSON lines ({"key","size","seq"}).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/imgly/syncer/events"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "syncer's HTTP listener")
	source := flag.String("source", "", "the source id (required)")
	token := flag.String("token", os.Getenv("SYNCER_TOKEN"), "bearer token for the asset API (default $SYNCER_TOKEN)")
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "NATS URL")
	stream := flag.String("stream", "SYNCER", "JetStream stream (nats.stream)")
	prefix := flag.String("subject-prefix", "syncer.changed", "subject prefix (nats.subjectPrefix)")
	flag.Parse()
	if *source == "" {
		fmt.Fprintln(os.Stderr, "mirror: -source is required")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	m := New(Config{API: *api, Source: *source, Token: *token, NATS: *natsURL, Stream: *stream,
		Subject: events.Subject(*prefix, *source), Log: log})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	objs := m.Objects()
	keys := make([]string, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	enc := json.NewEncoder(os.Stdout)
	for _, k := range keys {
		enc.Encode(map[string]any{"key": k, "size": objs[k].Size, "seq": objs[k].Seq}) //nolint:errcheck
	}
}
