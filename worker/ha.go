package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/catalog/pgcatalog"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/ownership"
	"github.com/imgly/syncer/schedule"
)

// ha is a worker's side of running as one of several replicas on a shared
// PostgreSQL catalog: each source's scans, schedule and publisher run only
// on the replica holding its lease. Notification consumers, webhooks, the
// asset API and SSE run on every replica.
type ha struct {
	leases *pgcatalog.Leases
	mgr    *ownership.Manager

	mu    sync.Mutex
	owned map[string]*schedule.Scheduler // the sources this replica runs now
}

// ReplicaID is the replica's id: the flag's value, else POD_NAME (the
// downward API in Kubernetes), else the host name.
func ReplicaID(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv("POD_NAME"); p != "" {
		return p
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "syncer"
	}
	return h
}

// setupHA prepares ownership when the catalog is shared (PostgreSQL); the
// embedded catalog's file lock already makes its one process the owner of
// everything.
func (w *Worker) setupHA() {
	w.replica = ReplicaID(w.opts.Replica)
	leases, err := pgcatalog.LeasesOf(w.cat)
	if err != nil {
		return
	}
	h := &ha{leases: leases, owned: map[string]*schedule.Scheduler{}}
	ids := make([]string, len(w.sources))
	for i, s := range w.sources {
		ids[i] = s.Config.ID
	}
	h.mgr = ownership.New(leases, ownership.Options{
		Replica: w.replica, Sources: ids, TTL: w.opts.LeaseTTL, Renew: w.opts.LeaseRenew, Log: w.log,
		Run: w.runOwned,
	})
	w.ha = h
}

// runOwned runs source id's scans and publisher under claim until ctx ends
// (the lease lost, given up, or the worker stopping). Every commit, outbox
// read and ack goes through the lease's fence.
func (w *Worker) runOwned(ctx context.Context, id string, claim *ownership.Claim) {
	s := w.source(id)
	if s == nil {
		return
	}
	fc := s.Catalog.Fenced(claim.Lease.Fence())
	sched, err := w.scanMetrics.NewScheduler([]schedule.Job{{Spec: s.Config.Schedule, Target: schedule.Target{
		ID: id, Provider: s.Provider, Filter: Filter(s.Config), Catalog: fc, Guard: Guard(s.Config),
		ListConcurrency: w.listConcurrency(s.Config), ProbeListing: w.probeListing(s.Config),
	}}}, schedule.Options{}, w.log)
	if err != nil {
		w.log.Error("ownership: source not started", "source", id, "err", err)
		return
	}
	w.ha.mu.Lock()
	w.ha.owned[id] = sched
	w.ha.mu.Unlock()
	defer func() {
		w.ha.mu.Lock()
		if w.ha.owned[id] == sched {
			delete(w.ha.owned, id)
		}
		w.ha.mu.Unlock()
	}()
	// As in Run: the publisher outlives the scans so it can flush what
	// they committed; a lost lease makes that flush fail fenced at once.
	pctx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		w.pub.Run(pctx, []events.Outbox{fencedOutbox{Source: fc, claim: claim}}, w.opts.FlushTimeout)
	}()
	sched.Run(ctx)
	stopPub()
	<-pubDone
}

// fencedOutbox is a source's outbox published under its lease.
type fencedOutbox struct {
	*catalog.Source
	claim *ownership.Claim
}

func (f fencedOutbox) CheckPublish() error { return f.claim.Check() }

func (w *Worker) source(id string) *Source {
	for _, s := range w.sources {
		if s.Config.ID == id {
			return s
		}
	}
	return nil
}

// scheduler is the scheduler that runs source id here: the worker's own
// one, or with a shared catalog the owned source's (nil when another
// replica owns it).
func (w *Worker) scheduler(id string) *schedule.Scheduler {
	if w.ha == nil {
		return w.sched
	}
	w.ha.mu.Lock()
	defer w.ha.mu.Unlock()
	return w.ha.owned[id]
}

// schedStatus is the scheduling state of source id on this replica.
func (w *Worker) schedStatus(id string) (schedule.Status, bool) {
	if s := w.scheduler(id); s != nil {
		return s.Status(id)
	}
	return schedule.Status{}, false
}

// ErrNotOwner is returned (wrapped) by a scan asked of a replica that does
// not own the source.
var ErrNotOwner = errors.New("source owned by another replica")

func (w *Worker) scanWith(ctx context.Context, id string, o schedule.ScanOptions) (schedule.Result, error) {
	s := w.scheduler(id)
	if s == nil {
		if w.source(id) == nil {
			return schedule.Result{}, fmt.Errorf("%w: %q", schedule.ErrNoSource, id)
		}
		return schedule.Result{}, fmt.Errorf("%w: %q (this is replica %s; see /status for its owner)", ErrNotOwner, id, w.replica)
	}
	return s.ScanWith(ctx, id, o)
}

// leaseView is who owns each source, for /status.
type leaseView struct {
	Owner   string
	Expires time.Time
}

// owners reads the lease table (nil with the embedded catalog, where this
// replica owns everything).
func (w *Worker) owners(ctx context.Context) (map[string]leaseView, error) {
	if w.ha == nil {
		return nil, nil
	}
	rows, err := w.ha.leases.List(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]leaseView{}
	for _, r := range rows {
		if r.Live {
			out[r.Source] = leaseView{Owner: r.Owner, Expires: r.Expires}
		}
	}
	return out, nil
}

// ownerOf is source id's owner and lease expiry as /status shows them.
func (w *Worker) ownerOf(owners map[string]leaseView, id string) (string, *time.Time) {
	if w.ha == nil {
		return w.replica, nil
	}
	v, ok := owners[id]
	if !ok {
		return "", nil
	}
	e := v.Expires.UTC()
	return cmp.Or(v.Owner, ""), &e
}
