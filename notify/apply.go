package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// Committer is what the applier needs of a source's catalog.
type Committer interface {
	Commit(ctx context.Context, muts []catalog.Mutation) ([]catalog.Change, error)
}

// Statter reads the current state of a key (a providers.Provider).
type Statter interface {
	Stat(ctx context.Context, key string) (providers.Object, error)
}

// Route is one source notifications can be applied to.
type Route struct {
	SourceID string
	Provider string // "s3", "gcs", "azure"
	Bucket   string
	Filter   providers.Filter
	Store    Statter
	Catalog  Committer
}

// RouterOptions tune a Router.
type RouterOptions struct {
	// StatRate limits stats per second across all sources; StatBurst is the
	// bucket size. Stats happen when a notification lacks what the catalog
	// needs, and a burst of notifications must not become a burst of
	// requests that gets the worker throttled.
	StatRate  float64
	StatBurst int
	// StatConcurrency bounds the stats in flight.
	StatConcurrency int
	// VerifyAfter is the age (by the event's Time) past which a complete
	// event is still checked by a stat. Fresh events are applied as they
	// are: their sequencers order them, and a stat per event would cost a
	// request per change. A late one can describe a state that a scan has
	// since seen replaced; applying it would publish a change that the
	// next notification or scan takes back. Zero verifies nothing.
	VerifyAfter time.Duration
	Log         *slog.Logger
	Registerer  prometheus.Registerer
}

// Router is the Applier: it routes each event to every source whose provider
// and bucket match and whose prefix and filters include the key, and commits
// it through the same catalog path a scan uses.
type Router struct {
	routes      []Route
	limiter     *rate.Limiter
	verifyAfter time.Duration
	sem         chan struct{}
	log         *slog.Logger
	once        *OnceLog

	m     *Metrics
	stats *prometheus.CounterVec
}

var _ Applier = (*Router)(nil)

// The stat budget's defaults: 1000 stats a second, bursts of 200, 16 in
// flight. config's notify defaults are these (config.DefaultStat*), kept
// here because config cannot be imported by the apply path (the kinds that
// config's tests load import notify).
const (
	DefaultStatRate        = 1000
	DefaultStatBurst       = 200
	DefaultStatConcurrency = 16
)

// NewRouter returns a router over routes. Unset stat options take the
// Default* values.
func NewRouter(routes []Route, o RouterOptions) (*Router, error) {
	if o.StatRate <= 0 {
		o.StatRate = DefaultStatRate
	}
	if o.StatBurst <= 0 {
		o.StatBurst = DefaultStatBurst
	}
	if o.StatConcurrency <= 0 {
		o.StatConcurrency = DefaultStatConcurrency
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	r := &Router{
		routes:      routes,
		limiter:     rate.NewLimiter(rate.Limit(o.StatRate), o.StatBurst),
		verifyAfter: o.VerifyAfter,
		sem:         make(chan struct{}, o.StatConcurrency),
		log:         o.Log,
		once:        NewOnceLog(o.Log),
		m:           NewMetrics(o.Registerer),
		stats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_notification_stats_total",
			Help: "Stats made to complete notifications, by source and result.",
		}, []string{"source", "result"}),
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(r.stats); err != nil {
			return nil, fmt.Errorf("register notification metrics: %w", err)
		}
	}
	return r, nil
}

// Apply implements Applier. What it decides about each event (applied,
// stale, filtered, foreign) is counted in syncer_notifications_total under
// the Transport ctx carries (see Transport.Context); without one, under
// transport "".
func (r *Router) Apply(ctx context.Context, events []Event) error {
	t := TransportFrom(ctx)
	transport := ""
	if t != nil {
		transport = t.Name
	}
	count := func(source, outcome string, n int) {
		if n > 0 {
			r.m.Total.WithLabelValues(source, transport, outcome).Add(float64(n))
		}
	}
	routed := make([]bool, len(events)) // some source has the event's bucket
	for i := range r.routes {
		rt := &r.routes[i]
		var mine []*Event
		for j := range events {
			ev := &events[j]
			if ev.Provider != rt.Provider || ev.Bucket != rt.Bucket {
				continue
			}
			routed[j] = true
			if !rt.Filter.Match(ev.Key) {
				count(rt.SourceID, OutcomeSkippedFiltered, 1)
				continue
			}
			mine = append(mine, ev)
		}
		if len(mine) == 0 {
			continue
		}
		muts, err := r.mutations(ctx, rt, mine)
		if err != nil {
			return err
		}
		changes, err := rt.Catalog.Commit(ctx, muts)
		if err != nil {
			return fmt.Errorf("apply notifications to %s: %w", rt.SourceID, err)
		}
		count(rt.SourceID, OutcomeApplied, len(changes))
		count(rt.SourceID, OutcomeSkippedStale, len(muts)-len(changes))
		r.observeLag(rt.SourceID, transport, mine, changes)
	}
	for j := range events {
		if !routed[j] {
			if t != nil {
				count(t.Source, OutcomeSkippedForeign, 1)
			}
			// Once per transport and bucket at warn: a queue or
			// subscription fed by a bucket no source watches is
			// usually a misconfiguration; the counter keeps the total.
			ev := &events[j]
			r.once.Log(ctx, slog.LevelWarn, transport+"|"+ev.Provider+"|"+ev.Bucket,
				"notification for a bucket no source watches skipped; does the queue belong to this source?",
				"transport", transport, "provider", ev.Provider, "bucket", ev.Bucket, "key", ev.Key, "id", ev.ID)
		}
	}
	return nil
}

// observeLag records, for each committed change, the time from its event's
// provider time to the commit.
func (r *Router) observeLag(source, transport string, evs []*Event, changes []catalog.Change) {
	if len(changes) == 0 {
		return
	}
	times := make(map[string]time.Time, len(evs))
	for _, ev := range evs {
		if !ev.Time.IsZero() {
			times[ev.Key] = ev.Time
		}
	}
	h := r.m.Lag.WithLabelValues(source, transport)
	for _, c := range changes {
		if t, ok := times[c.Object.Key]; ok {
			h.Observe(max(c.At.Sub(t), 0).Seconds())
		}
	}
}

// mutations turns a route's events into mutations, in order. The stats that
// incomplete events need run concurrently (bounded by the router's stat
// semaphore), so a batch of ten SQS messages costs about one stat's latency.
func (r *Router) mutations(ctx context.Context, rt *Route, evs []*Event) ([]catalog.Mutation, error) {
	muts := make([]catalog.Mutation, len(evs))
	errs := make([]error, len(evs))
	var wg sync.WaitGroup
	now := time.Now()
	for i, ev := range evs {
		if !r.needsStat(ev, now) {
			muts[i], errs[i] = r.mutation(ctx, rt, ev, false)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			muts[i], errs[i] = r.mutation(ctx, rt, ev, true)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return muts, nil
}

// needsStat says whether ev is decided by the store's current state rather
// than by what it says: it is incomplete, or complete but late.
func (r *Router) needsStat(ev *Event, now time.Time) bool {
	if !ev.Complete {
		return true
	}
	// An event of unknown age counts as late.
	return r.verifyAfter > 0 && (ev.Time.IsZero() || now.Sub(ev.Time) > r.verifyAfter)
}

// mutation turns an event into the catalog mutation for one source, asking
// the store for the key's state when stat is set.
func (r *Router) mutation(ctx context.Context, rt *Route, ev *Event, stat bool) (catalog.Mutation, error) {
	m := catalog.Mutation{Origin: catalog.Notification, Sequencer: ev.Sequencer}
	if !stat {
		m.EventTime = ev.Time
		m.Delete = ev.Kind == Delete
		m.Object = ev.Object
		m.Object.Key = ev.Key
		return m, nil
	}
	obj, err := r.stat(ctx, rt, ev.Key)
	switch {
	case errors.Is(err, providers.ErrNotFound):
		// Gone by now, whatever the event said: a later delete, or a
		// non-current version's deletion of an object that no longer exists.
		m.Delete = true
		m.Object.Key = ev.Key
	case err != nil:
		return m, fmt.Errorf("complete %s notification %s for %s: %w", ev.Kind, ev.ID, rt.SourceID, err)
	default:
		m.Object = obj
	}
	return m, nil
}

func (r *Router) stat(ctx context.Context, rt *Route, key string) (providers.Object, error) {
	if err := r.limiter.Wait(ctx); err != nil {
		return providers.Object{}, err
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return providers.Object{}, ctx.Err()
	}
	defer func() { <-r.sem }()
	obj, err := rt.Store.Stat(ctx, key)
	result := "found"
	switch {
	case errors.Is(err, providers.ErrNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	r.stats.WithLabelValues(rt.SourceID, result).Inc()
	return obj, err
}
