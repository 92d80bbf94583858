// Package schedule is the safety net: it reconciles each source on its cron
// schedule by listing it and diffing the listing against the catalog.
package schedule

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// Catalog is what a reconciliation needs of a source's catalog.
type Catalog interface {
	Range(ctx context.Context, after string, fn func(catalog.Entry) error) error
	Commit(ctx context.Context, muts []catalog.Mutation) ([]catalog.Change, error)
	Stats(ctx context.Context) (catalog.Stats, error)
	ListingState(ctx context.Context) (catalog.ListingState, error)
	SetListingProgress(ctx context.Context, after string) error
	SetListingComplete(ctx context.Context) error
}

// Target is one source to reconcile.
type Target struct {
	ID       string
	Provider providers.Provider
	Filter   providers.Filter
	Catalog  Catalog
	// Guard, if set, holds the deletions of a scan that would delete too
	// much (nil: no limit).
	Guard *Guard
	// ListConcurrency is how many key ranges the listing reads at once
	// (providers.WalkParallel); 1 or less lists in one sequence.
	ListConcurrency int
	// ProbeListing, for a ListConcurrency that is the automatic default
	// rather than the source's own, lists the first pages in one sequence
	// and goes on in ranges only if the client mostly waited for the store
	// meanwhile (see listProbe); otherwise the whole listing is one
	// sequence.
	ProbeListing bool
}

// Guard is the mass-deletion guard of a source (config: guard).
type Guard struct {
	// MaxDeletePercent holds a scan that would delete more than this
	// percentage (0..100) of the objects the catalog recorded before it.
	MaxDeletePercent int
	// MaxDeletes holds a scan that would delete more than this many objects
	// (0: no count limit).
	MaxDeletes int
}

// HeldError says why the guard held a scan's deletions. It is not a failure
// of the scan: its additions and modifications were committed.
type HeldError struct {
	WouldDelete int // deletions the complete listing found
	Of          int // objects the catalog recorded before the scan
	Empty       bool
	Guard       Guard
}

func (e *HeldError) Error() string {
	const release = "release with syncer scan --allow-mass-delete"
	if e.Empty {
		return fmt.Sprintf("held: the listing is empty; would delete all %d of %d; %s", e.WouldDelete, e.Of, release)
	}
	pct := 100.0
	if e.Of > 0 {
		pct = float64(e.WouldDelete) * 100 / float64(e.Of)
	}
	if e.Guard.MaxDeletes > 0 && e.WouldDelete > e.Guard.MaxDeletes {
		return fmt.Sprintf("held: would delete %d of %d (%d > maxDeletes %d); %s", e.WouldDelete, e.Of, e.WouldDelete, e.Guard.MaxDeletes, release)
	}
	return fmt.Sprintf("held: would delete %d of %d (%s%% > %d%%); %s", e.WouldDelete, e.Of,
		strconv.FormatFloat(pct, 'f', -1, 64), e.Guard.MaxDeletePercent, release)
}

// check returns the hold of a scan that found n deletions in a listing of
// matched objects, over a catalog of before objects; nil if it may apply them.
func (g *Guard) check(n, matched, before int) *HeldError {
	if g == nil || n == 0 {
		return nil
	}
	h := &HeldError{WouldDelete: n, Of: before, Guard: *g}
	switch {
	case matched == 0:
		// An empty listing of a non-empty source is far more often a
		// misconfiguration or an outage than a bucket emptied on purpose.
		h.Empty = true
	case g.MaxDeletes > 0 && n > g.MaxDeletes:
	case n*100 > g.MaxDeletePercent*before:
	default:
		return nil
	}
	return h
}

// Progress is a running count, reported after every listed page.
type Progress struct {
	Pages    int
	Listed   int // objects the provider listed
	Matched  int // of those, objects the filters let through
	Added    int
	Modified int
	Deleted  int
}

// Result is what a reconciliation did.
type Result struct {
	Progress
	Duration time.Duration
	// Held is set when the guard held the scan's deletions (Deleted is 0
	// then); the error of such a scan is nil.
	Held *HeldError
	// ResumedAfter is the key after which a resumed first listing began
	// ("" for a listing from the start). A resumed listing applies no
	// deletions.
	ResumedAfter string
	// Ranges is set when the listing was read in parallel key ranges
	// (from its start, or once a probe found the store's latency bounds
	// it).
	Ranges bool
	// IndexBuild is how long building the order indexes a first import
	// deferred took (part of Duration; 0 when there were none to build).
	IndexBuild time.Duration
}

// IndexBuilder is a Catalog whose asset indexes a first import leaves for
// after its listing (catalog.Source.DeferIndexes and BuildIndexes).
type IndexBuilder interface {
	DeferIndexes(ctx context.Context) error
	BuildIndexes(ctx context.Context) (built bool, err error)
}

// Options tune a reconciliation.
type Options struct {
	// BatchSize is how many changes are committed per transaction.
	BatchSize int
	// OnPage is called after each page, from the reconciling goroutine.
	OnPage func(Progress)
	// SpillDir is where deletion candidates beyond memory are spooled
	// ("" for the system temp dir).
	SpillDir string
	// AllowMassDelete lifts the target's guard for this reconciliation.
	AllowMassDelete bool

	probe *listProbe // nil: defaultProbe (tests set their own)
}

const defaultBatchSize = 5000

// Reconcile lists t's source and commits the difference to its catalog.
//
// The diff is a streaming merge: the listing and the catalog are both read in
// the provider's key order, one page at a time, so memory does not grow with
// the number of objects.
//
// Additions and modifications are committed as they are found, guarded by
// the catalog state they were computed from. Deletions are only known to be
// real once the whole listing has succeeded: until then they are spooled, and
// a listing that fails part-way commits none of them (but keeps the additions
// and modifications it saw, which are true whatever the rest of the listing
// holds).
//
// With a guard, the deletions of a complete listing are applied only when
// they stay within its limits; otherwise the scan is held (Result.Held).
//
// A first listing (the catalog has never seen one complete) records how far
// it has committed; when it is killed or fails, the next one resumes after
// that key, where the provider can start a listing after a key. A resumed
// listing applies no deletions: it has not seen the keys before its start.
func Reconcile(ctx context.Context, t Target, opts Options) (Result, error) {
	res, err := reconcile(ctx, t, opts)
	if err != nil {
		return res, fmt.Errorf("reconcile %s: %w", t.ID, err)
	}
	return res, nil
}

func reconcile(ctx context.Context, t Target, opts Options) (Result, error) {
	start := time.Now()
	if opts.BatchSize <= 0 {
		opts.BatchSize = defaultBatchSize
	}
	r := &reconciler{ctx: ctx, start: start, t: t, opts: opts, order: t.Provider.Order(), dels: newSpool(opts.SpillDir)}
	defer r.dels.close()
	before, err := t.Catalog.Stats(ctx)
	if err != nil {
		return Result{}, err
	}
	ls, err := t.Catalog.ListingState(ctx)
	if err != nil {
		return Result{}, err
	}
	// A first listing: none has completed and this source either has just
	// begun one or has never committed a change. (A catalog from before the
	// listing state was recorded has changes and no state: it is listed in
	// full once, as before, and then marked.)
	first := !ls.Complete && (ls.InProgress || before.LastSeq == 0)
	ib, _ := t.Catalog.(IndexBuilder)
	if first && ib != nil {
		if err := ib.DeferIndexes(ctx); err != nil {
			return Result{}, err
		}
	}
	var progress func(context.Context, string) error
	if first && providers.CanStartAfter(t.Provider) {
		// A resume point outside the prefix (edited since) says nothing
		// about this listing: it starts from the beginning.
		if ls.InProgress && ls.After != "" && strings.HasPrefix(ls.After, t.Filter.Prefix) {
			r.resumed, r.after = ls.After, ls.After
		} else if !ls.InProgress {
			if err := t.Catalog.SetListingProgress(ctx, ""); err != nil {
				return Result{}, err
			}
		}
		progress = t.Catalog.SetListingProgress
	}
	r.com = startCommitter(ctx, t.Catalog, progress)
	r.ahead = startReadAhead(ctx, t.Catalog, r.order, r.after, aheadChunk)
	defer r.ahead.close()

	err = r.list(ctx)
	if err == nil && r.resumed == "" {
		// Whatever the catalog holds after the last listed key is gone.
		err = r.collectDeletes()
	}
	// Additions seen before a failure are committed either way.
	if cerr := r.flush(ctx); err == nil {
		err = cerr
	}
	if cerr := r.com.wait(); err == nil {
		err = cerr
	}
	var held *HeldError
	if err == nil && r.resumed == "" {
		guard := t.Guard
		if opts.AllowMassDelete {
			guard = nil
		}
		if held = guard.check(r.dels.n, r.p.Matched, int(before.Objects)); held == nil {
			err = r.commitDeletes(ctx)
		}
	}
	if err == nil {
		err = t.Catalog.SetListingComplete(ctx)
	}
	var build time.Duration
	if err == nil && ib != nil {
		// After every complete listing, not only a first one: a build
		// that a crash or a shutdown cut short is begun again here.
		b0 := time.Now()
		var built bool
		if built, err = ib.BuildIndexes(ctx); built {
			build = time.Since(b0)
		}
	}
	res := Result{Progress: r.progress(), Duration: time.Since(start), Held: held, ResumedAfter: r.resumed, Ranges: r.ranges, IndexBuild: build}
	return res, err
}

type reconciler struct {
	ctx     context.Context
	start   time.Time
	t       Target
	opts    Options
	order   providers.Order
	p       Progress
	after   string // last key whose catalog entries have been merged
	resumed string // the key a resumed first listing started after
	pending []catalog.Mutation
	com     *committer
	ahead   *readAhead
	dels    *spool
	ranges  bool // the listing is read in parallel ranges
}

// page merges one listed page against the catalog entries up to its last key.
func (r *reconciler) page(pg providers.Page) error {
	ctx := r.ctx
	r.p.Pages++
	r.p.Listed += len(pg.Objects)
	if len(pg.Objects) == 0 {
		r.report()
		return nil
	}
	objs := pg.Objects
	if !r.t.Filter.All() {
		kept := objs[:0:0]
		for _, o := range objs {
			if r.t.Filter.Match(o.Key) {
				kept = append(kept, o)
			}
		}
		objs = kept
	}
	r.p.Matched += len(objs)
	last := pg.Objects[len(pg.Objects)-1].Key

	i := 0
	for {
		e, ok, err := r.ahead.next(r.after)
		if err != nil {
			return err
		}
		if !ok || r.order.Compare(e.Key, last) > 0 {
			break
		}
		r.ahead.pop()
		for ; i < len(objs) && r.order.Compare(objs[i].Key, e.Key) < 0; i++ {
			r.upsert(objs[i], 0)
		}
		if i < len(objs) && objs[i].Key == e.Key {
			// A settling object is present, so not deleted, but not yet
			// in a state worth announcing.
			if !objs[i].Settling && catalog.Changed(e.Object, objs[i]) {
				r.upsert(objs[i], e.Seq)
			}
			i++
			continue
		}
		if err := r.dels.add(e.Key, e.Seq); err != nil {
			return err
		}
	}
	for ; i < len(objs); i++ {
		r.upsert(objs[i], 0)
	}
	r.after = last
	if len(r.pending) >= r.opts.BatchSize {
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
	r.report()
	return nil
}

func (r *reconciler) report() {
	if r.opts.OnPage != nil {
		r.opts.OnPage(r.progress())
	}
}

func (r *reconciler) progress() Progress {
	p := r.p
	p.Added = int(r.com.added.Load())
	p.Modified = int(r.com.modified.Load())
	return p
}

func (r *reconciler) upsert(o providers.Object, ifSeq uint64) {
	if o.Settling {
		return // announced once a later scan sees it settled
	}
	r.pending = append(r.pending, catalog.Mutation{Object: o, Origin: catalog.Scan, Guard: true, IfSeq: ifSeq, ListedAt: r.start})
}

// collectDeletes spools every catalog entry after r.after.
func (r *reconciler) collectDeletes() error {
	for {
		e, ok, err := r.ahead.next(r.after)
		if err != nil || !ok {
			return err
		}
		r.ahead.pop()
		if err := r.dels.add(e.Key, e.Seq); err != nil {
			return err
		}
	}
}

// flush hands the pending upserts to the committer and starts a new batch.
func (r *reconciler) flush(ctx context.Context) error {
	if len(r.pending) == 0 {
		return nil
	}
	if err := r.com.submit(batch{r.pending, r.after}); err != nil {
		return err
	}
	r.pending = make([]catalog.Mutation, 0, r.opts.BatchSize)
	return nil
}

// committer commits a scan's batches of upserts on a goroutine of its own,
// one batch in flight, so that a commit's CPU and fsync overlap with fetching
// and merging the next pages. That is safe because a later page only reads
// catalog keys after the last key of every batch handed over before it.
type committer struct {
	cat      Catalog
	ctx      context.Context
	progress func(context.Context, string) error // nil unless a first listing records its progress
	in       chan batch
	done     chan struct{}
	err      error // set before done closes
	failed   atomic.Bool
	added    atomic.Int64
	modified atomic.Int64
}

// batch is a scan's upserts for every key up to and including after.
type batch struct {
	muts  []catalog.Mutation
	after string
}

func startCommitter(ctx context.Context, cat Catalog, progress func(context.Context, string) error) *committer {
	// A scan interrupted by shutdown still records what it saw.
	c := &committer{cat: cat, ctx: context.WithoutCancel(ctx), progress: progress, in: make(chan batch), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *committer) run() {
	defer close(c.done)
	for b := range c.in {
		if c.err != nil {
			continue // drain: the scan stops at its next submit
		}
		changes, err := c.cat.Commit(c.ctx, b.muts)
		if err == nil && c.progress != nil {
			// Recorded after the batch: a crash between the two resumes a
			// little early, re-listing keys the catalog already has, which
			// commits nothing twice.
			err = c.progress(c.ctx, b.after)
		}
		if err != nil {
			c.err = err
			c.failed.Store(true)
			continue
		}
		for _, ch := range changes {
			switch ch.Op {
			case catalog.Added:
				c.added.Add(1)
			case catalog.Modified:
				c.modified.Add(1)
			}
		}
	}
}

// submit hands over a batch; it waits while the previous one is committed.
func (c *committer) submit(b batch) error {
	if c.failed.Load() {
		// The cause, not just that there was one: "no space left on
		// device" is what the operator needs to read. c.err was written
		// before failed was set, so reading it here is ordered.
		return fmt.Errorf("an earlier commit of this scan failed: %w", c.err)
	}
	c.in <- b
	return nil
}

// wait lets the last batch finish and returns the first commit error.
func (c *committer) wait() error {
	close(c.in)
	<-c.done
	return c.err
}

func (r *reconciler) commitDeletes(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	batch := make([]catalog.Mutation, 0, min(r.opts.BatchSize, r.dels.n))
	err := r.dels.each(func(key string, seq uint64) error {
		batch = append(batch, catalog.Mutation{
			Object: providers.Object{Key: key}, Delete: true, Origin: catalog.Scan, Guard: true, IfSeq: seq, ListedAt: r.start,
		})
		if len(batch) < r.opts.BatchSize {
			return nil
		}
		changes, err := r.t.Catalog.Commit(ctx, batch)
		r.p.Deleted += len(changes)
		batch = batch[:0]
		return err
	})
	if err != nil {
		return err
	}
	changes, err := r.t.Catalog.Commit(ctx, batch)
	r.p.Deleted += len(changes)
	if err != nil {
		return err
	}
	if r.p.Deleted > 0 {
		r.report()
	}
	return nil
}
