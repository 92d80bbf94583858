// Package schedule is the safety net: it reconciles each source on its cron
// schedule by listing it and diffing the listing against the catalog.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// Catalog is what a reconciliation needs of a source's catalog.
type Catalog interface {
	Range(ctx context.Context, after string, fn func(catalog.Entry) error) error
	Commit(ctx context.Context, muts []catalog.Mutation) ([]catalog.Change, error)
}

// Target is one source to reconcile.
type Target struct {
	ID       string
	Provider providers.Provider
	Filter   providers.Filter
	Catalog  Catalog
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
func Reconcile(ctx context.Context, t Target, opts Options) (Result, error) {
	start := time.Now()
	if opts.BatchSize <= 0 {
		opts.BatchSize = defaultBatchSize
	}
	r := &reconciler{ctx: ctx, start: start, t: t, opts: opts, order: t.Provider.Order(), dels: newSpool(opts.SpillDir)}
	defer r.dels.close()
	r.com = startCommitter(ctx, t.Catalog)

	err := providers.Walk(ctx, t.Provider, t.Filter.Prefix, r.page)
	if err == nil {
		// Whatever the catalog holds after the last listed key is gone.
		err = r.collectDeletes(ctx)
	}
	// Additions seen before a failure are committed either way.
	if cerr := r.flush(ctx); err == nil {
		err = cerr
	}
	if cerr := r.com.wait(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.commitDeletes(ctx)
	}
	res := Result{Progress: r.progress(), Duration: time.Since(start)}
	if err != nil {
		return res, fmt.Errorf("reconcile %s: %w", t.ID, err)
	}
	return res, nil
}

type reconciler struct {
	ctx     context.Context
	start   time.Time
	t       Target
	opts    Options
	order   providers.Order
	p       Progress
	after   string // last key whose catalog entries have been merged
	pending []catalog.Mutation
	com     *committer
	dels    *spool
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
	err := r.t.Catalog.Range(ctx, r.after, func(e catalog.Entry) error {
		if r.order.Compare(e.Key, last) > 0 {
			return catalog.ErrStop
		}
		for ; i < len(objs) && r.order.Compare(objs[i].Key, e.Key) < 0; i++ {
			r.upsert(objs[i], 0)
		}
		if i < len(objs) && objs[i].Key == e.Key {
			if catalog.Changed(e.Object, objs[i]) {
				r.upsert(objs[i], e.Seq)
			}
			i++
			return nil
		}
		return r.dels.add(e.Key, e.Seq)
	})
	if err != nil {
		return err
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
	r.pending = append(r.pending, catalog.Mutation{Object: o, Origin: catalog.Scan, Guard: true, IfSeq: ifSeq, ListedAt: r.start})
}

// collectDeletes spools every catalog entry after r.after.
func (r *reconciler) collectDeletes(ctx context.Context) error {
	return r.t.Catalog.Range(ctx, r.after, func(e catalog.Entry) error {
		return r.dels.add(e.Key, e.Seq)
	})
}

// flush hands the pending upserts to the committer and starts a new batch.
func (r *reconciler) flush(ctx context.Context) error {
	if len(r.pending) == 0 {
		return nil
	}
	if err := r.com.submit(r.pending); err != nil {
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
	in       chan []catalog.Mutation
	done     chan struct{}
	err      error // set before done closes
	failed   atomic.Bool
	added    atomic.Int64
	modified atomic.Int64
}

func startCommitter(ctx context.Context, cat Catalog) *committer {
	// A scan interrupted by shutdown still records what it saw.
	c := &committer{cat: cat, ctx: context.WithoutCancel(ctx), in: make(chan []catalog.Mutation), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *committer) run() {
	defer close(c.done)
	for batch := range c.in {
		if c.err != nil {
			continue // drain: the scan stops at its next submit
		}
		changes, err := c.cat.Commit(c.ctx, batch)
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
func (c *committer) submit(batch []catalog.Mutation) error {
	if c.failed.Load() {
		return errors.New("an earlier commit of this scan failed")
	}
	c.in <- batch
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
