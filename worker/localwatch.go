package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/schedule"
)

// TransportWatch is the transport label of a local source's directory
// watch in the notification metrics and /status.
const TransportWatch = "watch"

// localBucket is the bucket a local source's watch events name: one per
// source, so that the router hands a watch's events to its own source only.
func localBucket(id string) string { return "local/" + id }

// addLocalWatch makes the directory watch of a local source one of the
// worker's notification consumers: its events go through the router like
// any other notification, and runConsumer restarts it if it fails.
func (w *Worker) addLocalWatch(s *Source) error {
	p := localOf(s.Provider)
	if p == nil {
		return fmt.Errorf("source %s: watch: not a local provider", s.Config.ID)
	}
	name := TransportWatch + "/" + s.Config.ID
	t := notify.NewTransport(w.reg, s.Config.ID, TransportWatch)
	lw := &localWatch{
		w: w, src: s, p: p, t: t, rescans: make(chan struct{}, 1),
		fallbacks: w.watchFallbacks.MustCurryWith(prometheus.Labels{"source": s.Config.ID}),
	}
	for _, r := range []string{local.RescanOverflow, local.RescanWatchLimit} {
		lw.fallbacks.WithLabelValues(r)
	}
	w.consumers[name] = lw
	w.notifiers = append(w.notifiers, &notifier{source: s.Config.ID, transport: TransportWatch, name: name, last: t})
	return nil
}

// newWatchFallbacks is the counter of scans a watch asked for.
func newWatchFallbacks(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncer_local_watch_fallbacks_total",
		Help: "Scans a local source's directory watch fell back to, by reason: overflow (the inotify queue overflowed) or watch_limit (fs.inotify.max_user_watches reached).",
	}, []string{"source", "reason"})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register watch metrics: %w", err)
	}
	return c, nil
}

// localOf is the local adapter beneath p's wrappers, or nil.
func localOf(p providers.Provider) *local.Provider {
	for p != nil {
		if lp, ok := p.(*local.Provider); ok {
			return lp
		}
		u, ok := p.(interface{ Unwrap() providers.Provider })
		if !ok {
			return nil
		}
		p = u.Unwrap()
	}
	return nil
}

// localWatch is a local source's watch: a local.WatchSink submitting to the
// router, and a Consumer for the worker.
type localWatch struct {
	w         *Worker
	src       *Source
	p         *local.Provider
	t         *notify.Transport
	rescans   chan struct{} // one pending rescan at most
	fallbacks *prometheus.CounterVec
}

// rescanBackoff spaces the attempts at a fallback scan while the source's
// previous scan still runs (it may have listed past a change the watch lost).
var rescanBackoff = retry.Policy{Min: 200 * time.Millisecond, Max: 5 * time.Second}

// Run implements Consumer.
func (lw *localWatch) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lw.rescanLoop(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	quiet := local.DefaultSettle
	if c, ok := lw.src.Kind.Settings.(local.Config); ok {
		quiet = c.SettleTime()
	}
	o := local.WatchOptions{Prefix: lw.src.Config.Prefix, Quiet: quiet, Sink: lw, Log: lw.w.log}
	if f := lw.w.opts.OnWatching; f != nil {
		o.Ready = func() { f(lw.src.Config.ID) }
	}
	return lw.p.Watch(ctx, o)
}

func (lw *localWatch) rescanLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-lw.rescans:
		}
		bo := rescanBackoff.Start()
		for {
			_, err := lw.w.sched.Scan(ctx, lw.src.Config.ID)
			if !errors.Is(err, schedule.ErrBusy) || !bo.Wait(ctx) {
				break
			}
		}
	}
}

// Rescan implements local.WatchSink.
func (lw *localWatch) Rescan(reason string) {
	lw.fallbacks.WithLabelValues(reason).Inc()
	select {
	case lw.rescans <- struct{}{}:
	default: // one is pending already; it will see this change too
	}
}

// Known implements local.WatchSink.
func (lw *localWatch) Known(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := lw.src.Catalog.Range(ctx, prefix, func(e catalog.Entry) error {
		if !strings.HasPrefix(e.Key, prefix) {
			return catalog.ErrStop
		}
		keys = append(keys, e.Key)
		return nil
	})
	return keys, err
}

// Apply implements local.WatchSink: updates become notify.Events, complete
// and sequenced, applied by the router like any notification. A key that
// is gone and that the catalog never recorded (a temporary file renamed
// over its target, say) is dropped: committing it would only leave a
// marker behind.
func (lw *localWatch) Apply(ctx context.Context, ups []local.Update) error {
	lw.t.Received()
	evs := make([]notify.Event, 0, len(ups))
	for _, u := range ups {
		ev := notify.Event{
			Provider: "local", Bucket: localBucket(lw.src.Config.ID), Key: u.Key, Kind: notify.Upsert,
			Object: u.Object, Complete: true, Sequencer: u.Sequencer, Time: u.Seen, ID: "watch",
		}
		if u.Gone {
			_, ok, err := lw.src.Catalog.Get(ctx, u.Key)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			ev.Kind = notify.Delete
		} else if u.Object.LastModified.After(ev.Time) {
			// A file dated in the future must not read as an event older
			// than what the catalog records.
			ev.Time = u.Object.LastModified
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil
	}
	return lw.w.router.Apply(lw.t.Context(ctx), evs)
}
