package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/worker"
)

func newCatalogLsCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path, id, prefix string
		limit            int
		remote           remoteFlags
	)
	c := &cobra.Command{
		Use:   "ls (--config FILE | --url URL) --source ID",
		Short: "List what the catalog records for a source, one JSON object per line",
		Long: `List what the catalog records for a source, one JSON object per line in key order.

The catalog is opened directly; when a running worker holds it (the file is locked) and the
config's http.listen is not "off", the worker is asked over HTTP instead. --url asks the
worker at URL without a config.`,
		Example: `  syncer catalog ls --config syncer.yaml --source cloud-images
  syncer catalog ls --config syncer.yaml --source cloud-images --prefix images/2026/ --limit 10
  syncer catalog ls --url http://127.0.0.1:8080 --source cloud-images`,
		RunE: func(c *cobra.Command, _ []string) error {
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			return cmdCatalogLs(c.Context(), path, id, prefix, limit, &remote, stdout, stderr)
		},
	}
	c.Flags().StringVar(&path, "config", "", "configuration file (required unless --url is given)")
	c.Flags().StringVar(&id, "source", "", "source id (required)")
	c.Flags().StringVar(&prefix, "prefix", "", "only keys with this prefix")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many entries (0: all)")
	remote.register(c, "ask the worker at this URL (e.g. http://127.0.0.1:8080) instead of opening the catalog")
	return c
}

func cmdCatalogLs(ctx context.Context, path, id, prefix string, limit int, remote *remoteFlags, stdout, _ io.Writer) error {
	if remote.url != "" {
		if id == "" {
			return usagef("--source is required")
		}
		return remote.client(nil).catalogLs(ctx, id, prefix, limit, stdout)
	}
	cfg, src, err := loadSource(path, id)
	if err != nil {
		return err
	}
	cat, err := worker.OpenCatalog(ctx, cfg.Catalog, slog.Default())
	if err != nil {
		if cl := remote.client(cfg); cl != nil && errors.Is(err, catalog.ErrLocked) {
			if rerr := cl.catalogLs(ctx, id, prefix, limit, stdout); rerr != nil {
				return fmt.Errorf("%w; asking its worker: %w", err, rerr)
			}
			return nil
		}
		return err
	}
	defer cat.Close()
	order, err := storedOrder(ctx, cat, *src)
	if err != nil {
		return err
	}
	cs := cat.Source(src.ID, order)
	n := 0
	enc := json.NewEncoder(stdout)
	emit := func(e catalog.Entry) error {
		if limit > 0 && n >= limit {
			return catalog.ErrStop
		}
		n++
		return enc.Encode(e)
	}
	// The keys with the prefix are the prefix itself, if it is a key, and
	// those right after it: start there rather than at the first key.
	if prefix != "" {
		e, ok, err := cs.Get(ctx, prefix)
		if err != nil {
			return err
		}
		if ok {
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	return cs.Range(ctx, prefix, func(e catalog.Entry) error {
		if !strings.HasPrefix(e.Key, prefix) {
			return catalog.ErrStop
		}
		return emit(e)
	})
}

func newCatalogStatsCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path   string
		remote remoteFlags
	)
	c := &cobra.Command{
		Use:   "stats (--config FILE | --url URL)",
		Short: "Objects, last sequence number and unpublished changes per source",
		Long: `Print, per source, the objects the catalog records, its last sequence number and the changes
not yet published.

The catalog is opened directly; when a running worker holds it (the file is locked) and the
config's http.listen is not "off", the worker is asked over HTTP instead. --url asks the
worker at URL without a config.`,
		Example: `  syncer catalog stats --config syncer.yaml
  SYNCER_TOKEN=… syncer catalog stats --url http://127.0.0.1:8080`,
		RunE: func(c *cobra.Command, _ []string) error {
			return cmdCatalogStats(c.Context(), path, &remote, stdout, stderr)
		},
	}
	c.Flags().StringVar(&path, "config", "", "configuration file (required unless --url is given)")
	remote.register(c, "ask the worker at this URL (e.g. http://127.0.0.1:8080) instead of opening the catalog")
	return c
}

func cmdCatalogStats(ctx context.Context, path string, remote *remoteFlags, stdout, _ io.Writer) error {
	if remote.url != "" {
		return remote.client(nil).catalogStats(ctx, stdout)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	cat, err := worker.OpenCatalog(ctx, cfg.Catalog, slog.Default())
	if err != nil {
		if cl := remote.client(cfg); cl != nil && errors.Is(err, catalog.ErrLocked) {
			if rerr := cl.catalogStats(ctx, stdout); rerr != nil {
				return fmt.Errorf("%w; asking its worker: %w", err, rerr)
			}
			return nil
		}
		return err
	}
	defer cat.Close()
	for _, s := range cfg.Sources {
		order, err := storedOrder(ctx, cat, s)
		if err != nil {
			return err
		}
		st, err := cat.Source(s.ID, order).Stats(ctx)
		if err != nil {
			return err
		}
		printStats(stdout, s.ID, st.Objects, st.LastSeq, st.Pending)
	}
	return nil
}

// printStats is the one format of a catalog stats line, local or remote.
func printStats(w io.Writer, id string, objects, lastSeq, pending uint64) {
	fmt.Fprintf(w, "%s\tobjects=%d\tlastSeq=%d\tunpublished=%d\n", id, objects, lastSeq, pending)
}
