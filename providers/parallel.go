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
}

// WalkParallel is WalkAfter listing several key ranges of the listing at
// once and merging them back in key order, so fn sees exactly what WalkAfter
// would show it (every key once, in Order) while the store's latency is paid
// by several requests at a time.
//
// Ranges come from the data: a first page is listed on its own (a listing
// of one page stays one request); from then on the planner cuts the key
// space ahead into ranges of about PagesPerRange pages, interpolating the key
// density of the latest page in the keys' byte space, and a range's worker
// lists it with ListPageAfter(its start) and following pages until a key
// passes its end. A range found empty tells where the next key is, and the
// planner jumps there; a range that finds no key after its start at all
// marks the end, after which one last unbounded range closes the listing.
// The ranges in flight start at two and grow with each range that held keys,
// up to Concurrency, so a small bucket is not flooded with requests past its
// end; a throttled request halves them.
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
	w := &parallelWalk{p: p, sa: sa, prefix: prefix, o: o, cancel: cancel,
		chunks: make(chan *chunk, o.Concurrency-1), allowed: 2, model: &keyModel{prefix: prefix}}
	w.cond = sync.NewCond(&w.mu)
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.cond.Broadcast()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(w.chunks)
		w.plan(ctx, startAfter, &wg)
	}()
	err := w.merge(ctx, startAfter, fn)
	if err == nil {
		// A range's error, or the caller's cancellation: incomplete.
		err = context.Cause(ctx)
	}
	cancel(nil)
	wg.Wait()
	return err
}

// A chunk is one range of the key space, (lo, hi]; the last has no hi.
type chunk struct {
	lo, hi string
	last   bool
	// first: the range's first page, already listed by the planner (its
	// Next continues it).
	first *Page
	pages chan Page
	err   error // set before pages is closed
	// seen is closed once the range's first page is in (or it failed):
	// the next range is planned only then, from what that page showed.
	seen     chan struct{}
	seenOnce sync.Once
}

func newChunk(lo string, readAhead int) *chunk {
	return &chunk{lo: lo, pages: make(chan Page, readAhead), seen: make(chan struct{})}
}

// seenBy marks c's first page in (once), for w's planner.
func (c *chunk) seenBy(w *parallelWalk) {
	c.seenOnce.Do(func() {
		close(c.seen)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.unseen--
		w.cond.Broadcast()
	})
}

type parallelWalk struct {
	p      Provider
	sa     StartAfterLister
	prefix string
	o      ParallelOptions
	cancel context.CancelCauseFunc
	chunks chan *chunk

	mu       sync.Mutex
	cond     *sync.Cond
	inflight int // ranges being listed
	unseen   int // of those, ranges whose first page is still out
	allowed  int // ranges that may be listed at once
	// What the ranges learnt, for planning the next ones: the latest
	// page's key span, and where keys resume after an empty range.
	model    *keyModel
	gapAfter string // no key lies in (gapAfter, gapKey)
	gapKey   string
	// ended: a range found no key at all after its start.
	ended bool
}

// merge hands fn the ranges' pages in key order, checking it.
func (w *parallelWalk) merge(ctx context.Context, startAfter string, fn func(Page) error) error {
	prev, first := startAfter, startAfter == ""
	for c := range w.chunks {
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
			return c.err
		}
		if ctx.Err() != nil {
			return nil // the cause, if any, is the walk's error
		}
	}
	return nil
}

// plan cuts the key space after startAfter into ranges and starts their
// workers, in key order, as slots free up.
func (w *parallelWalk) plan(ctx context.Context, startAfter string, wg *sync.WaitGroup) {
	pg, err := w.call(ctx, func() (Page, error) {
		if startAfter == "" {
			return w.p.ListPage(ctx, w.prefix, "")
		}
		return w.sa.ListPageAfter(ctx, w.prefix, startAfter)
	})
	c := newChunk(startAfter, w.o.ReadAhead)
	c.first = &pg
	c.seenOnce.Do(func() { close(c.seen) })
	if err != nil {
		c.err = err
		close(c.pages)
		w.send(ctx, c)
		return
	}
	w.learn(c, pg)
	frontier, done := "", pg.Next == ""
	if done {
		c.last = true
	} else {
		frontier, done = w.boundary(lastKey(pg))
		c.hi, c.last = frontier, done
	}
	for {
		w.mu.Lock()
		for w.inflight >= w.allowed && ctx.Err() == nil {
			w.cond.Wait()
		}
		w.inflight++
		if c.first == nil {
			w.unseen++
		}
		w.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		wg.Add(1)
		go func(c *chunk) {
			defer wg.Done()
			w.list(ctx, c)
		}(c)
		if !w.send(ctx, c) || c.last {
			return
		}
		// One range's first request out at a time: a range that ends a
		// directory shows where the next keys are before the next range
		// is cut, instead of several ranges landing in the dead space
		// after it. (Letting more out while ranges keep finding keys
		// made layouts with letter-filled gaps slower than one sequence.)
		w.mu.Lock()
		for w.unseen > 0 && ctx.Err() == nil {
			w.cond.Wait()
		}
		w.mu.Unlock()
		c = newChunk(frontier, w.o.ReadAhead)
		w.mu.Lock()
		base, ended := frontier, w.ended
		if w.gapAfter <= frontier && frontier < w.gapKey {
			base = w.gapKey // nothing lies between: start the range's span at the next key
		}
		w.mu.Unlock()
		if ended {
			c.last = true
			continue
		}
		frontier, c.last = w.boundary(base)
		c.hi = frontier
	}
}

func (w *parallelWalk) send(ctx context.Context, c *chunk) bool {
	select {
	case w.chunks <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// boundary is the end of a range whose keys begin about base: PagesPerRange
// pages of the latest density on.
func (w *parallelWalk) boundary(base string) (hi string, last bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	hi, ok := w.model.boundary(base, w.o.PagesPerRange)
	return hi, !ok
}

// learn records what page, listed for c, says about the key space.
func (w *parallelWalk) learn(c *chunk, pg Page) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range pg.Objects {
		w.model.learn(o.Key)
	}
	if len(pg.Objects) >= 2 {
		w.model.page(pg.Objects[0].Key, lastKey(pg))
	}
	if len(pg.Objects) == 0 && pg.Next == "" {
		w.ended = true
	}
	if c.last || c.hi == "" {
		return
	}
	// The page's keys are consecutive: none lies between the last one in
	// the range (or its start) and the first one past it.
	if i := sort.Search(len(pg.Objects), func(i int) bool { return pg.Objects[i].Key > c.hi }); i < len(pg.Objects) {
		after := c.lo
		if i > 0 {
			after = pg.Objects[i-1].Key
		}
		if after >= w.gapAfter {
			w.gapAfter, w.gapKey = after, pg.Objects[i].Key
		}
	}
}

// list lists the range c into c.pages, then frees its slot.
func (w *parallelWalk) list(ctx context.Context, c *chunk) {
	held := false
	defer func() {
		c.seenBy(w)
		close(c.pages)
		if c.err != nil {
			w.cancel(c.err)
		}
		w.mu.Lock()
		w.inflight--
		if held && c.err == nil {
			w.allowed = min(w.o.Concurrency, w.allowed+1)
		}
		w.cond.Broadcast()
		w.mu.Unlock()
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
		if n > 0 || c.first == nil {
			w.learn(c, pg)
		}
		c.seenBy(w)
		keep := len(pg.Objects)
		if !c.last {
			keep = sort.Search(len(pg.Objects), func(i int) bool { return pg.Objects[i].Key > c.hi })
		}
		if keep > 0 {
			held = true
			select {
			case c.pages <- Page{Objects: pg.Objects[:keep]}:
			case <-ctx.Done():
				return
			}
		}
		if keep < len(pg.Objects) || pg.Next == "" {
			return
		}
		if pg.Next == token {
			c.err = fmt.Errorf("listing %q: page token %q repeats", w.prefix, token)
			return
		}
		token = pg.Next
	}
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
