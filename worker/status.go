package worker

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/imgly/syncer/internal/buildinfo"
)

// Notification states (StatusNotification.State).
const (
	// StateRunning: the consumer is receiving.
	StateRunning = "running"
	// StateRestarting: the consumer stopped with an error and restarts
	// after its backoff.
	StateRestarting = "restarting"
	// StateFailed: the consumer failed failedAfter times in a row without
	// staying up; it keeps retrying, at most once a minute.
	StateFailed = "failed"
	// StateServing: a webhook, served while HTTP is.
	StateServing = "serving"
)

// failedAfter is the number of consecutive failures after which a
// restarting consumer is reported as failed.
const failedAfter = 3

// Status is the body of GET /status. The field names are a contract: the
// CLI's `syncer status` reads them.
type Status struct {
	Version   string    `json:"version"`
	Revision  string    `json:"revision"`
	StartedAt time.Time `json:"startedAt"`
	// Replica is this process's id (--replica-id, POD_NAME, host name).
	Replica string         `json:"replica"`
	NATS    StatusNATS     `json:"nats"`
	Sources []SourceStatus `json:"sources"`
}

// StatusNATS is where events go.
type StatusNATS struct {
	URL       string `json:"url"` // without credentials
	Connected bool   `json:"connected"`
	Embedded  bool   `json:"embedded"`
}

// SourceStatus is one source's state.
type SourceStatus struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
	// Bucket is the bucket, the container (azure) or the path (local).
	Bucket        string `json:"bucket"`
	Prefix        string `json:"prefix"`
	Objects       uint64 `json:"objects"`
	LastSeq       uint64 `json:"lastSeq"`
	PublishedSeq  uint64 `json:"publishedSeq"`
	OutboxPending uint64 `json:"outboxPending"`
	// Indexes is where the asset API's indexes stand for a source with
	// assets.index: ready, pending (a first import builds them after its
	// listing) or building; omitted for a source without them.
	Indexes    string      `json:"indexes,omitempty"`
	LastScan   *StatusScan `json:"lastScan"`
	NextScanAt *time.Time  `json:"nextScanAt"`
	// ScanRunningSince is when the scan in progress started (null when none
	// is); ScanOverdue says it has run longer than one interval of the
	// source's schedule, so ticks are skipped and changes wait for it.
	ScanRunningSince *time.Time `json:"scanRunningSince"`
	ScanOverdue      bool       `json:"scanOverdue"`
	// LastError is the last failed scan while the source keeps failing
	// (null once a scan succeeds): what kind of failure, so that a missing
	// bucket or a refused credential reads as such.
	LastError *StatusError `json:"lastError"`
	// RestingUntil is when a source the store throttled scans again on its
	// schedule; null when it is not resting.
	RestingUntil  *time.Time           `json:"restingUntil"`
	Notifications []StatusNotification `json:"notifications"`
	// Owner is the replica holding the source's lease ("" while none
	// does); with the embedded catalog, this replica. LeaseExpires is
	// the lease's expiry by the database's clock (null: no lease).
	Owner        string     `json:"owner"`
	LeaseExpires *time.Time `json:"leaseExpires"`
}

// StatusError is a failed scan's error.
type StatusError struct {
	// Kind is bucket_not_found, permission_denied, throttled, transient,
	// invalid_arguments, not_found or other.
	Kind  string    `json:"kind"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// StatusScan is the last reconciliation of a source.
type StatusScan struct {
	StartedAt       time.Time `json:"startedAt"`
	DurationSeconds float64   `json:"durationSeconds"`
	Listed          int64     `json:"listed"`
	// Result is ok, held (the mass-deletion guard held the scan's
	// deletions; Error says how many and how to release them), failed or
	// cancelled.
	Result string `json:"result"`
	Error  string `json:"error"`
}

// StatusNotification is one notification transport of a source.
type StatusNotification struct {
	// Transport is sqs, webhook, pubsub, storageQueue, eventGrid or watch.
	Transport string `json:"transport"`
	// State is running, restarting or failed (consumers) or serving
	// (webhooks).
	State         string     `json:"state"`
	LastMessageAt *time.Time `json:"lastMessageAt"`
}

// notifier is one notification transport of a source: a consumer (name is
// its key in Worker.consumers) or a webhook.
type notifier struct {
	source, transport string
	name              string // consumer key; "" for a webhook
	last              interface{ LastMessageAt() time.Time }
}

type consumerState struct {
	state    string
	failures int // consecutive, reset when the consumer stays up
}

// Status returns what GET /status shows.
func (w *Worker) Status(ctx context.Context) (Status, error) {
	bi := buildinfo.Read()
	st := Status{
		Version: bi.VersionOrDev(), Revision: bi.Revision,
		StartedAt: w.started.UTC().Truncate(time.Second),
		NATS: StatusNATS{
			URL:       RedactURL(w.natsURL()),
			Connected: w.nc.IsConnected(),
			Embedded:  w.embedded != nil,
		},
		Sources: []SourceStatus{},
		Replica: w.replica,
	}
	owners, err := w.owners(ctx)
	if err != nil {
		return Status{}, err
	}
	for _, s := range w.sources {
		ss, err := w.sourceStatus(ctx, s)
		if err != nil {
			return Status{}, err
		}
		ss.Owner, ss.LeaseExpires = w.ownerOf(owners, s.Config.ID)
		st.Sources = append(st.Sources, ss)
	}
	return st, nil
}

func (w *Worker) natsURL() string {
	if w.embedded != nil {
		return w.embedded.URL()
	}
	return w.cfg.NATS.URL
}

// counts are a source's catalog and publisher counters, read together.
type counts struct {
	objects, lastSeq, published, pending uint64
}

func (w *Worker) counts(ctx context.Context, s *Source) (counts, error) {
	cs, err := s.Catalog.Stats(ctx)
	if err != nil {
		return counts{}, fmt.Errorf("catalog stats of %s: %w", s.Config.ID, err)
	}
	c := counts{objects: cs.Objects, lastSeq: cs.LastSeq}
	// The outbox holds what the publisher has not yet dropped: everything
	// after the last ack. The publisher knows further (JetStream acked
	// more, the outbox drops it in the background); before it has read
	// the stream back, the last ack is what is known to be published.
	acked := cs.LastSeq - min(cs.Pending, cs.LastSeq)
	c.published = acked
	if p, ok := w.pub.Published(s.Config.ID); ok && p > acked && p <= cs.LastSeq {
		c.published = p
	}
	c.pending = cs.LastSeq - c.published
	return c, nil
}

func (w *Worker) sourceStatus(ctx context.Context, s *Source) (SourceStatus, error) {
	sc := s.Config
	ss := SourceStatus{
		// A kind without a bucket (local) shows where its objects are.
		ID: sc.ID, Provider: sc.Provider, Bucket: cmp.Or(s.Kind.Bucket, s.Kind.Location), Prefix: sc.Prefix,
		Notifications: []StatusNotification{},
	}
	c, err := w.counts(ctx, s)
	if err != nil {
		return ss, err
	}
	ss.Objects, ss.LastSeq, ss.PublishedSeq, ss.OutboxPending = c.objects, c.lastSeq, c.published, c.pending
	if ss.Indexes, err = s.Catalog.IndexState(ctx); err != nil {
		return ss, err
	}
	if sched, ok := w.schedStatus(sc.ID); ok {
		if l := sched.Last; l != nil {
			ss.LastScan = &StatusScan{
				StartedAt: l.StartedAt.UTC().Truncate(time.Second), DurationSeconds: l.Duration.Seconds(),
				Listed: l.Listed, Result: l.Result,
			}
			if l.Err != nil {
				ss.LastScan.Error = l.Err.Error()
			}
		}
		if f := sched.LastFailure; f != nil && f.Err != nil {
			ss.LastError = &StatusError{Kind: f.Kind, Error: f.Err.Error(), At: f.StartedAt.Add(f.Duration).UTC().Truncate(time.Second)}
		}
		ss.RestingUntil = rfc3339(sched.RestUntil)
		ss.NextScanAt = rfc3339(sched.Next)
		ss.ScanRunningSince, ss.ScanOverdue = rfc3339(sched.RunningSince), sched.Overdue
	}
	for _, n := range w.notifiers {
		if n.source != sc.ID {
			continue
		}
		sn := StatusNotification{Transport: n.transport, State: w.notifierState(n)}
		if n.last != nil {
			sn.LastMessageAt = rfc3339(n.last.LastMessageAt())
		}
		ss.Notifications = append(ss.Notifications, sn)
	}
	return ss, nil
}

func (w *Worker) notifierState(n *notifier) string {
	if n.name == "" {
		return StateServing
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	cs := w.consumerState[n.name]
	if cs == nil {
		return StateRunning // Run has not started it yet
	}
	return cs.state
}

// consumerRunning records that a consumer's Run was (re)started.
func (w *Worker) consumerRunning(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.consumer(name).state = StateRunning
}

// consumerRecovered records that a consumer stayed up for its backoff: a
// later failure counts from one again.
func (w *Worker) consumerRecovered(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.consumer(name).failures = 0
}

// consumerFailed records that a consumer's Run returned an error.
func (w *Worker) consumerFailed(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cs := w.consumer(name)
	cs.failures++
	cs.state = StateRestarting
	if cs.failures >= failedAfter {
		cs.state = StateFailed
	}
}

func (w *Worker) consumer(name string) *consumerState {
	cs := w.consumerState[name]
	if cs == nil {
		cs = &consumerState{}
		w.consumerState[name] = cs
	}
	return cs
}

// RedactURL returns a NATS URL (or a comma-separated list of them) without
// the credentials of any.
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := url.Parse(p); err == nil && u.Scheme != "" && u.Host != "" {
			u.User = nil
			parts[i] = u.String()
			continue
		}
		// No scheme ("user:pass@host:4222"): cut what precedes the host.
		if at := strings.LastIndex(p, "@"); at >= 0 {
			p = p[at+1:]
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
