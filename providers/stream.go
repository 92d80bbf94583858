package providers

import (
	"context"
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type result struct {
		page Page
		err  error
	}
	pages := make(chan result, 1)
	go func() {
		defer close(pages)
		token := ""
		for {
			pg, err := p.ListPage(ctx, prefix, token)
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
	var prev string
	first := true
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
