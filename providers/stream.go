package providers

import (
	"context"
	"errors"
	"fmt"
)

// OrderError reports a listing whose keys are not strictly increasing in the
// provider's promised order. A diff against such a listing would be wrong, so
// the scan that sees one fails.
type OrderError struct {
	Order     Order
	Prev, Key string
}

func (e *OrderError) Error() string {
	return fmt.Sprintf("listing out of %s order: %q after %q", e.Order, e.Key, e.Prev)
}

// Walk lists every page below prefix and hands each to fn, in order. While fn
// works on one page the next is already being fetched, so a slow consumer and a
// slow store overlap instead of adding up. At most two pages are in memory.
//
// Walk checks that keys are strictly increasing across the whole listing and
// fails with an *OrderError otherwise. It returns the first error of the
// provider or of fn; an error means the listing is incomplete.
func Walk(ctx context.Context, p Provider, prefix string, fn func(Page) error) error {
	return WalkAfter(ctx, p, prefix, "", fn)
}

// WalkAfter is Walk over the keys after startAfter only ("" for all). A
// non-empty startAfter needs a provider for which CanStartAfter holds; the
// first page is then read with ListPageAfter, and every key must come after
// startAfter.
func WalkAfter(ctx context.Context, p Provider, prefix, startAfter string, fn func(Page) error) error {
	var sa StartAfterLister
	if startAfter != "" {
		var ok bool
		if sa, ok = p.(StartAfterLister); !ok || !CanStartAfter(p) {
			return fmt.Errorf("listing %q after %q: %w", prefix, startAfter, errors.ErrUnsupported)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type result struct {
		page Page
		err  error
	}
	pages := make(chan result, 1)
	// On every return the prefetch is cancelled and waited for, so that no
	// request of this listing outlives the call (a caller may reuse or
	// close the provider as soon as it returns).
	defer func() {
		cancel()
		for range pages {
		}
	}()
	go func() {
		defer close(pages)
		token := ""
		for {
			var (
				pg  Page
				err error
			)
			if sa != nil && token == "" {
				pg, err = sa.ListPageAfter(ctx, prefix, startAfter)
			} else {
				pg, err = p.ListPage(ctx, prefix, token)
			}
			select {
			case pages <- result{pg, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || pg.Next == "" {
				return
			}
			if pg.Next == token {
				// A store that hands back the token it was given would
				// loop forever; treat it as a failed listing.
				select {
				case pages <- result{err: fmt.Errorf("listing %q: page token %q repeats", prefix, token)}:
				case <-ctx.Done():
				}
				return
			}
			token = pg.Next
		}
	}()

	order := p.Order()
	// After startAfter, the first key too must come after it.
	prev, first := startAfter, startAfter == ""
	for r := range pages {
		if r.err != nil {
			return r.err
		}
		for _, o := range r.page.Objects {
			if !first && order.Compare(prev, o.Key) >= 0 {
				return &OrderError{Order: order, Prev: prev, Key: o.Key}
			}
			prev, first = o.Key, false
		}
		if err := fn(r.page); err != nil {
			return err
		}
	}
	return ctx.Err()
}
