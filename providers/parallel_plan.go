package providers

import (
	"context"
	"math/big"
	"sort"
	"sync"
)

// splitPages is the least a range must have left to list, in pages at the
// recent density and beyond the page it is fetching, to be split: each
// half then holds a page or more.
const splitPages = 2

// headReserve is how many ranges past Concurrency+1 may exist to split the
// range the merge waits on, when the ranges after it sit on full read-ahead
// (they make no requests, but would leave it listing alone).
const headReserve = 2

// plan lists head's first page, then starts ranges as slots free up until
// the plan has reached the listing's end and no range is left to split.
func (w *parallelWalk) plan(ctx context.Context, head *chunk, wg *sync.WaitGroup) {
	pg, err := w.call(ctx, func() (Page, error) {
		if head.lo == "" {
			return w.p.ListPage(ctx, w.prefix, "")
		}
		return w.sa.ListPageAfter(ctx, w.prefix, head.lo)
	})
	if err != nil {
		head.err = err
		close(head.pages)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	head.first, head.seen = &pg, true
	w.learn(head, pg)
	if pg.Next == "" {
		head.last = true
	} else {
		head.hi, head.last = w.boundary(lastKey(pg))
	}
	w.tail, w.merging = head, head
	w.start(ctx, head, wg)
	for ctx.Err() == nil {
		switch {
		case w.busy >= w.allowed || w.live > w.o.Concurrency+headReserve:
		case w.live <= w.o.Concurrency && !w.tail.last && w.tail.seen:
			w.extend(ctx, wg)
			continue
		case w.split(ctx, wg):
			continue
		case w.tail.last && w.inflight == 0:
			return
		}
		w.cond.Wait()
	}
}

// start lists c in a worker of its own (w.mu held).
func (w *parallelWalk) start(ctx context.Context, c *chunk, wg *sync.WaitGroup) {
	w.inflight++
	w.busy++
	w.stats.Ranges++
	w.stats.MostBusy = max(w.stats.MostBusy, w.busy)
	w.live++
	if c.first != nil {
		w.live-- // the head, counted from the start
	}
	c.listing = true
	w.active = append(w.active, c)
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.list(ctx, c)
	}()
}

// extend cuts the next range after the tail, at the density of the recent
// pages, and starts it (w.mu held). One range's first request is out ahead
// at a time: a range that ends a directory shows where the next keys are
// before the next range is cut, instead of several ranges landing in the
// dead space after it. (Letting more out while ranges kept finding keys made
// layouts with letter-filled gaps slower than one sequence.)
func (w *parallelWalk) extend(ctx context.Context, wg *sync.WaitGroup) {
	prev := w.tail
	c := newChunk(prev.hi, w.o.ReadAhead)
	base := prev.hi
	if w.gapAfter <= base && base < w.gapKey {
		base = w.gapKey // nothing lies between: start the range's span at the next key
	}
	if w.ended {
		c.last = true
	} else {
		c.hi, c.last = w.boundary(base)
	}
	prev.next, w.tail = c, c
	w.start(ctx, c, wg)
}

// split starts a range over part of what the first range in key order with
// splitPages pages left has still to list beyond the page it is fetching, and ends that range
// where the new one begins (w.mu held). Only a range that has listed keys of
// its own is split, at most PagesPerRange pages past its page in flight (a
// range cut past the alphabet reaches far), and one split's first request is
// out at a time: a split found empty (the range's keys ended early) stops
// its range being split again. false: no range to split.
func (w *parallelWalk) split(ctx context.Context, wg *sync.WaitGroup) bool {
	if w.probing {
		return false
	}
	as := w.model.alphabets()
	// Within a range that is listing keys, the pages' density (not the
	// ranges', which counts the dead space after directories).
	step := w.model.pageStep(as)
	// The first range in key order with enough left: the merge waits on
	// it, while the ranges after it may sit on full read-ahead.
	var best *chunk
	var bestFrom, bestLeft *big.Int
	need := new(big.Int).Mul(step, big.NewInt(splitPages))
	for c := w.merging; c != nil && best == nil; c = c.next {
		if w.live > w.o.Concurrency && c != w.merging {
			break
		}
		if c.last || !c.listing || !c.seen || c.pos == c.lo || c.pos == c.emptyAt {
			continue
		}
		from := new(big.Int).Add(w.model.numWith(as, c.pos), step)
		if left := new(big.Int).Sub(w.model.numWith(as, c.hi), from); left.Cmp(need) >= 0 {
			best, bestFrom, bestLeft = c, from, left
		}
	}
	if best == nil {
		return false
	}
	off := bestLeft.Rsh(bestLeft, 1)
	if most := new(big.Int).Mul(step, big.NewInt(splitPages)); off.Cmp(most) > 0 {
		off = most
	}
	at, ok := w.model.strWith(as, bestFrom.Add(bestFrom, off))
	if !ok || at <= best.pos || at >= best.hi {
		return false
	}
	c := newChunk(at, w.o.ReadAhead)
	c.hi, c.next, c.parent = best.hi, best.next, best
	best.hi, best.next = at, c
	if w.tail == best {
		w.tail = c
	}
	w.stats.Splits++
	w.probing = true
	w.start(ctx, c, wg)
	return true
}

// boundary is the end of a range whose keys begin about base: PagesPerRange
// pages of the recent density on (w.mu held).
func (w *parallelWalk) boundary(base string) (hi string, last bool) {
	hi, ok := w.model.boundary(base, w.o.PagesPerRange)
	return hi, !ok
}

// learn records what page, listed for c, says about the key space (w.mu
// held).
func (w *parallelWalk) learn(c *chunk, pg Page) {
	for _, o := range pg.Objects {
		w.model.learn(o.Key)
	}
	if len(pg.Objects) >= 2 {
		w.model.page(pg.Objects[0].Key, lastKey(pg), len(pg.Objects))
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
