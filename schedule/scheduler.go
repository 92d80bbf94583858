package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/schedule/cronspec"
)

// Job is a target and its schedule: a robfig/cron/v3 standard spec,
// including descriptors such as "@hourly", or "@every <duration>" down to
// cronspec.MinInterval (cronspec.Parse).
type Job struct {
	Target Target
	Spec   string
	// Throttle is how long the source rests after a scan that failed
	// because the store throttled it (zero: DefaultThrottlePolicy).
	Throttle retry.Policy
}

// DefaultThrottlePolicy is the rest a source takes after a throttled scan:
// the scheduled scans in it are skipped. It starts at a minute and doubles,
// jittered, with each throttled scan in a row up to an hour; a scan that
// is not throttled ends it. By then each call of the scan has been retried
// with its own, shorter backoff (providers.DefaultThrottleBackoff): the store
// keeps refusing, and more scans would only add to its load.
var DefaultThrottlePolicy = retry.Policy{Min: time.Minute, Max: time.Hour}

// Scheduler runs each job's reconciliation on its schedule. A source's
// reconciliations never overlap: a tick that finds the previous one still
// running is skipped.
type Scheduler struct {
	jobs []*job
	log  *slog.Logger
	opts Options

	m *Metrics

	mu   sync.Mutex
	cron *cron.Cron // set while Run runs
}

type job struct {
	Job
	sched   cron.Schedule
	running sync.Mutex

	mu          sync.Mutex
	lastErr     error
	lastDone    time.Time
	last        *ScanStatus // nil before the first scan
	lastSuccess time.Time
	since       time.Time // when the reconciliation in progress started; zero when none is
	skipWarned  bool      // a skip during the reconciliation in progress was logged at warn
	entry       cron.EntryID
	throttled   int       // throttled scans in a row
	restUntil   time.Time // scheduled scans before it are skipped (see Job.Throttle)
	lastFailure *ScanStatus
}

// Scan results (ScanStatus.Result, label "result" of
// syncer_scan_duration_seconds).
const (
	ResultOK        = "ok"
	ResultFailed    = "failed"
	ResultCancelled = "cancelled"
	// ResultHeld: the listing completed and its additions and
	// modifications were committed, but the mass-deletion guard held its
	// deletions (ScanStatus.Err is the *HeldError).
	ResultHeld = "held"
)

// ScanStatus is what the last reconciliation of a source did.
type ScanStatus struct {
	StartedAt time.Time
	Duration  time.Duration
	Listed    int64
	Result    string // ResultOK, ResultFailed, ResultCancelled, ResultHeld
	Err       error  // nil when Result is ok; a *HeldError when held
	// Kind is the kind of a failed scan's error (providers.KindOf:
	// bucket_not_found, permission_denied, throttled, transient, …), ""
	// for any other result.
	Kind string
}

// Status is a source's scheduling state.
type Status struct {
	Last *ScanStatus // nil before the first reconciliation ended
	// LastSuccess is when the last successful reconciliation ended (zero
	// if none did).
	LastSuccess time.Time
	// Next is when the schedule runs the next reconciliation.
	Next time.Time
	// RunningSince is when the reconciliation in progress started (zero
	// when none is), and Overdue says it has run longer than one interval
	// of the schedule: its ticks are being skipped, so changes wait.
	RunningSince time.Time
	Overdue      bool
	// LastFailure is the last failed reconciliation while the source keeps
	// failing (nil once one succeeds or is held).
	LastFailure *ScanStatus
	// RestUntil is when a source that the store throttled scans again on
	// its schedule (zero when it is not resting; see Job.Throttle).
	RestUntil time.Time
}

// Metrics are the scan metrics (syncer_scans_total, syncer_scan_*,
// syncer_source_guard_held), labelled by source. A process registers them
// once and shares them between its schedulers: with ownership a source's
// scheduler is made anew at each lease it acquires, and a second
// registration of the same names would be refused.
type Metrics struct {
	scans    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	objects  *prometheus.GaugeVec
	held     *prometheus.GaugeVec
	errs     *prometheus.CounterVec
}

// NewMetrics makes the scan metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_scans_total", Help: "Reconciliations by source and result (ok, held, error; skipped: the previous one still ran; resting: the store throttled the source).",
		}, []string{"source", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "syncer_scan_duration_seconds", Help: "Duration of reconciliations by source and result (ok, held, failed, cancelled).",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 12),
		}, []string{"source", "result"}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncer_scan_objects", Help: "Objects matched by the last complete reconciliation.",
		}, []string{"source"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_scan_errors_total",
			Help: "Failed reconciliations by source and error kind (bucket_not_found, permission_denied, throttled, transient, invalid_arguments, not_found, other).",
		}, []string{"source", "kind"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncer_source_guard_held",
			Help: "1 while the mass-deletion guard holds the source's deletions (its last complete scan would have deleted too much), else 0.",
		}, []string{"source"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.scans, m.duration, m.objects, m.held, m.errs} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register scan metrics: %w", err)
			}
		}
	}
	return m, nil
}

// init makes every series of source id exist: dashboards and alerts see
// zeros, not gaps. Series that exist already keep their values.
func (m *Metrics) init(id string) {
	for _, r := range []string{"ok", "held", "error", "skipped", "resting"} {
		m.scans.WithLabelValues(id, r)
	}
	for _, r := range []string{ResultOK, ResultHeld, ResultFailed, ResultCancelled} {
		m.duration.WithLabelValues(id, r)
	}
	for _, k := range providers.KindNames() {
		m.errs.WithLabelValues(id, k)
	}
	m.held.WithLabelValues(id)
}

// NewScheduler returns a scheduler for jobs with scan metrics of its own,
// registered with reg (nil: not registered).
func NewScheduler(jobs []Job, opts Options, log *slog.Logger, reg prometheus.Registerer) (*Scheduler, error) {
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	return m.NewScheduler(jobs, opts, log)
}

// NewScheduler returns a scheduler for jobs that reports into m.
func (m *Metrics) NewScheduler(jobs []Job, opts Options, log *slog.Logger) (*Scheduler, error) {
	s := &Scheduler{log: log, opts: opts, m: m}
	for _, j := range jobs {
		sched, err := cronspec.Parse(j.Spec)
		if err != nil {
			return nil, fmt.Errorf("source %s: schedule %q: %w", j.Target.ID, j.Spec, err)
		}
		s.jobs = append(s.jobs, &job{Job: j, sched: sched})
		m.init(j.Target.ID)
	}
	return s, nil
}

// Run reconciles every source once at once — catching up on what changed
// while syncer was down — and then on each source's schedule, until ctx is
// cancelled. It returns after the reconciliations in progress have stopped.
func (s *Scheduler) Run(ctx context.Context) {
	c := cron.New(cron.WithLogger(cron.DiscardLogger))
	var wg sync.WaitGroup
	for _, j := range s.jobs {
		id := c.Schedule(j.sched, cron.FuncJob(func() { s.tick(ctx, j) }))
		j.mu.Lock()
		j.entry = id
		j.mu.Unlock()
	}
	s.mu.Lock()
	s.cron = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cron = nil
		s.mu.Unlock()
	}()
	for _, j := range s.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.tick(ctx, j)
		}()
	}
	c.Start()
	<-ctx.Done()
	<-c.Stop().Done() // waits for running cron jobs
	wg.Wait()
}

// Scan reconciles source id now, unless a reconciliation of it is running.
func (s *Scheduler) Scan(ctx context.Context, id string) (Result, error) {
	return s.ScanWith(ctx, id, ScanOptions{})
}

// ScanOptions tune one reconciliation run on demand.
type ScanOptions struct {
	// AllowMassDelete lifts the guard for this one reconciliation: it
	// applies the deletions it finds however many they are.
	AllowMassDelete bool
}

// ErrNoSource is returned (wrapped) for a source id the scheduler does not
// know.
var ErrNoSource = errors.New("no such source")

// ScanWith is Scan with options.
func (s *Scheduler) ScanWith(ctx context.Context, id string, o ScanOptions) (Result, error) {
	for _, j := range s.jobs {
		if j.Target.ID == id {
			return s.runJob(ctx, j, o)
		}
	}
	return Result{}, fmt.Errorf("%w: %q", ErrNoSource, id)
}

// tick runs a scheduled reconciliation, unless the source rests after the
// store throttled it. Scans asked for (Scan, ScanWith) do not wait: whoever
// asks has been told why the last one failed.
func (s *Scheduler) tick(ctx context.Context, j *job) {
	j.mu.Lock()
	until := j.restUntil
	j.mu.Unlock()
	if time.Now().Before(until) {
		s.m.scans.WithLabelValues(j.Target.ID, "resting").Inc()
		s.log.Debug("scan skipped: the store throttled the source; it rests", "source", j.Target.ID, "until", until)
		return
	}
	s.runJob(ctx, j, ScanOptions{})
}

// record keeps what a finished reconciliation says about the source's
// health: the last failure, and the rest a throttled one starts.
func (j *job) record(st *ScanStatus, err error) {
	j.lastErr, j.lastDone, j.last, j.since = err, time.Now(), st, time.Time{}
	switch {
	case st.Result == ResultCancelled:
		return // says nothing about the store
	case st.Result == ResultFailed:
		j.lastFailure = st
	default:
		j.lastFailure = nil
	}
	if err == nil {
		j.lastSuccess = j.lastDone
	}
	if st.Kind != providers.KindThrottled {
		j.throttled, j.restUntil = 0, time.Time{}
		return
	}
	j.throttled++
	p := j.Throttle
	if p.Min <= 0 {
		p = DefaultThrottlePolicy
	}
	j.restUntil = j.lastDone.Add(p.Delay(j.throttled))
}

// ErrBusy is returned when a source's previous reconciliation still runs.
var ErrBusy = errors.New("reconciliation already running")

func (s *Scheduler) runJob(ctx context.Context, j *job, o ScanOptions) (Result, error) {
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if !j.running.TryLock() {
		s.m.scans.WithLabelValues(j.Target.ID, "skipped").Inc()
		// On a short schedule a slow scan skips many ticks: warn once per
		// slow scan, the rest are in syncer_scans_total{result="skipped"}.
		j.mu.Lock()
		since, warned := j.since, j.skipWarned
		j.skipWarned = true
		j.mu.Unlock()
		level := slog.LevelWarn
		if warned {
			level = slog.LevelDebug
		}
		s.log.Log(ctx, level, "scan skipped: the previous one is still running", "source", j.Target.ID, "runningSince", since)
		return Result{}, ErrBusy
	}
	defer j.running.Unlock()
	s.log.Debug("scan started", "source", j.Target.ID)
	started := time.Now()
	j.mu.Lock()
	j.since, j.skipWarned = started, false
	j.mu.Unlock()
	opts := s.opts
	opts.AllowMassDelete = o.AllowMassDelete
	res, err := Reconcile(ctx, j.Target, opts)
	st := &ScanStatus{StartedAt: started, Duration: res.Duration, Listed: int64(res.Listed), Result: ResultOK, Err: err}
	switch {
	case err != nil && ctx.Err() != nil:
		st.Result = ResultCancelled
	case err != nil:
		st.Result, st.Kind = ResultFailed, providers.KindOf(err)
		s.m.errs.WithLabelValues(j.Target.ID, st.Kind).Inc()
	case res.Held != nil:
		st.Result, st.Err = ResultHeld, res.Held
	}
	s.m.duration.WithLabelValues(j.Target.ID, st.Result).Observe(res.Duration.Seconds())
	j.mu.Lock()
	j.record(st, err)
	rest := j.restUntil
	j.mu.Unlock()
	attrs := []any{"source", j.Target.ID, "listed", res.Listed, "matched", res.Matched,
		"added", res.Added, "modified", res.Modified, "deleted", res.Deleted, "duration", res.Duration.Round(time.Millisecond)}
	if res.IndexBuild > 0 {
		attrs = append(attrs, "indexBuild", res.IndexBuild.Round(time.Millisecond))
	}
	switch {
	case err != nil && ctx.Err() != nil:
		s.log.Info("scan interrupted by shutdown; no deletions applied", attrs...)
	case err != nil:
		s.m.scans.WithLabelValues(j.Target.ID, "error").Inc()
		attrs = append(attrs, "kind", st.Kind, "err", err)
		if !rest.IsZero() {
			attrs = append(attrs, "restUntil", rest.UTC().Format(time.RFC3339))
		}
		s.log.Error("scan failed; no deletions applied", attrs...)
	case res.Held != nil:
		h := res.Held
		s.m.scans.WithLabelValues(j.Target.ID, "held").Inc()
		s.m.objects.WithLabelValues(j.Target.ID).Set(float64(res.Matched))
		s.m.held.WithLabelValues(j.Target.ID).Set(1)
		s.log.Warn("scan held by the mass-deletion guard: additions and modifications applied, deletions not",
			append(attrs, "wouldDelete", h.WouldDelete, "of", h.Of, "emptyListing", h.Empty,
				"maxDeletePercent", h.Guard.MaxDeletePercent, "maxDeletes", h.Guard.MaxDeletes,
				"release", "syncer scan --source "+j.Target.ID+" --allow-mass-delete")...)
	default:
		s.m.scans.WithLabelValues(j.Target.ID, "ok").Inc()
		s.m.held.WithLabelValues(j.Target.ID).Set(0)
		if res.ResumedAfter != "" {
			// Matched covers only the keys after the resume point.
			attrs = append(attrs, "resumedAfter", res.ResumedAfter)
		} else {
			s.m.objects.WithLabelValues(j.Target.ID).Set(float64(res.Matched))
		}
		level := slog.LevelInfo
		if res.Added+res.Modified+res.Deleted == 0 {
			level = slog.LevelDebug // a quiet source on a short schedule must not flood the log
		}
		s.log.Log(ctx, level, "scan done", attrs...)
	}
	return res, err
}

// Status returns the scheduling state of source id, and whether it is
// scheduled here.
func (s *Scheduler) Status(id string) (Status, bool) {
	s.mu.Lock()
	c := s.cron
	s.mu.Unlock()
	for _, j := range s.jobs {
		if j.Target.ID != id {
			continue
		}
		j.mu.Lock()
		st := Status{LastSuccess: j.lastSuccess, RunningSince: j.since, RestUntil: j.restUntil}
		if j.last != nil {
			last := *j.last
			st.Last = &last
		}
		if j.lastFailure != nil {
			f := *j.lastFailure
			st.LastFailure = &f
		}
		if time.Now().After(st.RestUntil) {
			st.RestUntil = time.Time{}
		}
		entry := j.entry
		j.mu.Unlock()
		// The running cron knows when it fires next ("@every" counts
		// from when it started); before Run the spec tells.
		if c != nil {
			st.Next = c.Entry(entry).Next
		}
		if st.Next.IsZero() {
			st.Next = j.sched.Next(time.Now())
		}
		if since := st.RunningSince; !since.IsZero() {
			st.Overdue = time.Since(since) > j.sched.Next(since).Sub(since)
		}
		return st, true
	}
	return Status{}, false
}

// Healthy returns the errors of the sources whose last reconciliation failed.
func (s *Scheduler) Healthy() error {
	var errs []error
	for _, j := range s.jobs {
		j.mu.Lock()
		if j.lastErr != nil && !errors.Is(j.lastErr, context.Canceled) {
			errs = append(errs, j.lastErr)
		}
		j.mu.Unlock()
	}
	return errors.Join(errs...)
}
