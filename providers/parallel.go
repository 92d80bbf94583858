package providers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/imgly/syncer/internal/retry"
)

// DefaultListConcurrency is the number of key ranges listed at once when a
// source does not say (listConcurrency: 0) and its store can list ranges:
// real S3 and GCS answer a page in 50-300 ms, and eight ranges in flight
// bring a listing close to what the client can merge, well below the
// request rates at which they throttle.
const DefaultListConcurrency = 8

// ParallelOptions tune WalkParallel.
type ParallelOptions struct {
	// Concurrency is the most ranges listed at once; 1 or less walks in
	// one sequence (Walk).
	Concurrency int
	// PagesPerRange is the size, in pages, a range is cut to from the
	// density of the keys seen so far (default 4).
	PagesPerRange int
	// ReadAhead is how many pages each range may hold before the merge
	// takes them (default 3): what bounds memory, whatever the bucket's size.
	ReadAhead int
	// Throttled is the backoff after a store refuses a range's request
	// for load (ErrThrottled); each refusal also halves the ranges in
	// flight. Zero: 500 ms doubling to 10 s, 8 retries per request.
	Throttled ThrottleBackoff
	// Stats, if set, is filled in with what the walk did when it returns.
	Stats *ParallelStats
}

// ParallelStats is what a WalkParallel did, for tests and benchmarks.
type ParallelStats struct {
	Ranges      int // ranges listed, splits included
	Splits      int // ranges cut out of a range being listed
	EmptySplits int // of those, found holding no keys
	MostBusy    int // the most ranges making requests at once
}

// WalkParallel is WalkAfter listing several key ranges of the listing at
// once and merging them back in key order, so fn sees exactly what WalkAfter
// would show it (every key once, in Order) while the store's latency is paid
// by several requests at a time.
//
// Ranges come from the data: a first page is listed on its own (a listing
// of one page stays one request); from then on the planner cuts the key
// space ahead into ranges of about PagesPerRange pages, interpolating the key
// density of the recent pages in the keys' byte space, and a range's worker
// lists it with ListPageAfter(its start) and following pages until a key
// passes its end. A range found empty tells where the next key is, and the
// planner jumps there; a range that finds no key after its start at all
// marks the end, after which one last unbounded range closes the listing.
// While the planner cannot cut ahead (the latest range's first page is
// still out, or the end is known), a free slot splits the range with the
// most key space left to list (work stealing). The ranges in flight start
// at two and grow with each range whose first page held keys, up to
// Concurrency, so a small bucket is not flooded with requests past its end;
// a throttled request halves them.
//
// Memory is bounded by Concurrency+1 ranges of ReadAhead pages each. It needs
// a provider that lists in ByteOrder and can start after a key
// (CanStartAfter); for any other it is WalkAfter. An error of any range ends
// the listing with that error: a listing that failed part-way is incomplete,
// as with Walk.
func WalkParallel(ctx context.Context, p Provider, prefix, startAfter string, o ParallelOptions, fn func(Page) error) error {
	sa, ok := p.(StartAfterLister)
	if o.Concurrency <= 1 || !ok || !CanStartAfter(p) || p.Order() != ByteOrder {
		return WalkAfter(ctx, p, prefix, startAfter, fn)
	}
	if o.PagesPerRange <= 0 {
		o.PagesPerRange = 4
	}
	if o.ReadAhead <= 0 {
		o.ReadAhead = 3
	}
	if o.Throttled.Policy.Min <= 0 {
		o.Throttled = ThrottleBackoff{Policy: retry.Policy{Min: 500 * time.Millisecond, Max: 10 * time.Second}, Retries: 8}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &parallelWalk{p: p, sa: sa, prefix: prefix, o: o, cancel: cancel, allowed: 2, model: &keyModel{prefix: prefix}}
	w.cond = sync.NewCond(&w.mu)
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.cond.Broadcast()
	})
	defer stop()
	head := newChunk(startAfter, o.ReadAhead)
	w.live = 1
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.plan(ctx, head, &wg)
	}()
	err := w.merge(ctx, head, startAfter, fn)
	if err == nil {
		// A range's error, or the caller's cancellation: incomplete.
		err = context.Cause(ctx)
	}
	cancel(nil)
	wg.Wait()
	if o.Stats != nil {
		w.mu.Lock()
		*o.Stats = w.stats
		w.mu.Unlock()
	}
	return err
}

// A chunk is one range of the key space, (lo, hi]; the last has no hi.
// Fields marked "mu" are w.mu's: a split moves hi down while the range is
// listed, and links the new range in after it.
type chunk struct {
	lo string
	hi string // mu
	// last: the range has no end (mu; only the final range is).
	last bool
	// first: the range's first page, already listed by the planner (its
	// Next continues it).
	first *Page
	pages chan Page
	err   error // set before pages is closed
	// next is the range after this one in key order, once there is one (mu).
	next *chunk
	// pos is the last key the range has listed, lo before any (mu).
	pos string
	// listing: the worker may still take keys up to hi (mu); once false,
	// the range is closed to splits.
	listing bool
	// seen: the range's first page is in (mu); the next range is cut
	// ahead only then, from what that page showed.
	seen bool
	// parent: the range this one was split from; emptyAt: where the
	// range had listed to when a split of it found no keys (its keys end
	// before its end), "" if none did; it is split again only once it has
	// listed past there (mu).
	parent  *chunk
	emptyAt string
	keys    int  // listed so far (mu)
	blocked bool // waiting on a full read-ahead (mu)
}

func newChunk(lo string, readAhead int) *chunk {
	return &chunk{lo: lo, pos: lo, pages: make(chan Page, readAhead)}
}

type parallelWalk struct {
	p      Provider
	sa     StartAfterLister
	prefix string
	o      ParallelOptions
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	cond     *sync.Cond
	tail     *chunk   // the range furthest in key order
	merging  *chunk   // the range the merge is taking pages from
	active   []*chunk // ranges being listed
	inflight int      // ranges started and not yet done: len(active)
	// busy: of those, ranges not waiting on a full read-ahead (the ones
	// making requests, which allowed bounds).
	busy    int
	live    int // ranges not yet merged: at most Concurrency+1
	allowed int // ranges that may be listed at once
	// What the ranges learnt, for planning the next ones: the recent
	// pages' key spans, and where keys resume after an empty range.
	model    *keyModel
	gapAfter string // no key lies in (gapAfter, gapKey)
	gapKey   string
	// ended: a range found no key at all after its start.
	ended bool
	// probing: a split range's first page is out.
	probing bool
	stats   ParallelStats
}

// merge hands fn the ranges' pages in key order, checking it.
func (w *parallelWalk) merge(ctx context.Context, c *chunk, startAfter string, fn func(Page) error) error {
	prev, first := startAfter, startAfter == ""
	for c != nil {
		for pg := range c.pages {
			for _, o := range pg.Objects {
				if !first && prev >= o.Key {
					return &OrderError{Order: ByteOrder, Prev: prev, Key: o.Key}
				}
				prev, first = o.Key, false
			}
			if err := fn(pg); err != nil {
				return err
			}
		}
		if c.err != nil {
			if ctx.Err() != nil {
				// The range that failed first, not the ones it cancelled.
				return context.Cause(ctx)
			}
			return c.err
		}
		if ctx.Err() != nil {
			return nil // the cause, if any, is the walk's error
		}
		c = w.advance(ctx, c)
	}
	return nil
}

// advance retires c, merged, and is the range after it: nil after the last
// (or once ctx is done).
func (w *parallelWalk) advance(ctx context.Context, c *chunk) *chunk {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.live--
	w.cond.Broadcast()
	for c.next == nil && !c.last && ctx.Err() == nil {
		w.cond.Wait()
	}
	w.merging = c.next
	return c.next
}

// list lists the range c into c.pages, then frees its slot.
func (w *parallelWalk) list(ctx context.Context, c *chunk) {
	defer func() {
		w.mu.Lock()
		c.listing, c.seen = false, true
		if c.err == nil && !c.last && c.lo != "" {
			w.model.listed(c.lo, c.hi, c.keys)
		}
		for i, a := range w.active {
			if a == c {
				w.active = append(w.active[:i], w.active[i+1:]...)
				break
			}
		}
		w.inflight--
		if !c.blocked {
			w.busy--
		}
		w.cond.Broadcast()
		w.mu.Unlock()
		if c.err != nil {
			w.cancel(c.err)
		}
		close(c.pages)
	}()
	var pg Page
	var err error
	token := ""
	for n := 0; ; n++ {
		switch {
		case n == 0 && c.first != nil:
			pg = *c.first
		case n == 0:
			pg, err = w.call(ctx, func() (Page, error) { return w.sa.ListPageAfter(ctx, w.prefix, c.lo) })
		default:
			pg, err = w.call(ctx, func() (Page, error) { return w.p.ListPage(ctx, w.prefix, token) })
		}
		if err != nil {
			c.err = err
			return
		}
		keep, done := w.took(c, pg, n > 0 || c.first == nil)
		if keep > 0 && !w.hand(ctx, c, Page{Objects: pg.Objects[:keep]}) {
			return
		}
		if done {
			return
		}
		if pg.Next == token {
			c.err = fmt.Errorf("listing %q: page token %q repeats", w.prefix, token)
			return
		}
		token = pg.Next
	}
}

// hand gives pg to the merge. While c's read-ahead is full its slot counts
// as idle, so another range may make requests; it takes a slot again
// before its next request. false: ctx ended first.
func (w *parallelWalk) hand(ctx context.Context, c *chunk, pg Page) bool {
	select {
	case c.pages <- pg:
		return true
	default:
	}
	w.mu.Lock()
	c.blocked = true
	w.busy--
	w.cond.Broadcast()
	w.mu.Unlock()
	select {
	case c.pages <- pg:
	case <-ctx.Done():
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.busy >= w.allowed && ctx.Err() == nil {
		w.cond.Wait()
	}
	c.blocked = false
	w.busy++
	w.stats.MostBusy = max(w.stats.MostBusy, w.busy)
	return ctx.Err() == nil
}

// took records the page pg listed for c: how many of its keys are c's (up
// to its end, as it is now), and whether c is done with it.
func (w *parallelWalk) took(c *chunk, pg Page, learn bool) (keep int, done bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if learn {
		w.learn(c, pg)
	}
	keep = len(pg.Objects)
	if !c.last {
		keep = sort.Search(len(pg.Objects), func(i int) bool { return pg.Objects[i].Key > c.hi })
	}
	if !c.seen && keep > 0 {
		// Keys where the range was cut: there is more to list at once.
		w.allowed = min(w.o.Concurrency, w.allowed+1)
	}
	if !c.seen && c.parent != nil {
		w.probing = false
		if keep == 0 {
			c.parent.emptyAt = c.parent.pos
			w.stats.EmptySplits++
		}
	}
	c.seen = true
	if keep > 0 {
		c.pos = pg.Objects[keep-1].Key
		c.keys += keep
	}
	done = keep < len(pg.Objects) || pg.Next == ""
	if done {
		c.listing = false
	}
	w.cond.Broadcast()
	return keep, done
}

// call makes one request, waiting out a store that throttles: each refusal
// halves the ranges in flight (down to one), and the request is tried again
// after the backoff's wait.
func (w *parallelWalk) call(ctx context.Context, f func() (Page, error)) (Page, error) {
	bo := w.o.Throttled.Policy.Start()
	for tries := 0; ; tries++ {
		pg, err := f()
		if err == nil || !errors.Is(err, ErrThrottled) || tries >= w.o.Throttled.Retries {
			return pg, err
		}
		w.mu.Lock()
		w.allowed = max(1, w.allowed/2)
		w.mu.Unlock()
		if !bo.Wait(ctx) {
			return pg, err
		}
	}
}

func lastKey(pg Page) string {
	if len(pg.Objects) == 0 {
		return ""
	}
	return pg.Objects[len(pg.Objects)-1].Key
}
