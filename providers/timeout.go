package providers

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultRequestTimeout bounds one provider call (a list page, a stat) when
// a source sets no requestTimeout.
const DefaultRequestTimeout = 30 * time.Second

// WithTimeout returns p with a deadline of d on each ListPage and Stat (d <=
// 0: DefaultRequestTimeout). A store that accepts a request and never answers
// would otherwise hold a scan, and every later scan of the source, forever;
// bounded, the scan fails (applying no deletions) and the next one runs.
//
// The deadline is per call, not per listing: a large bucket takes as many
// pages as it needs. A call cut off by it fails with an error that names the
// timeout and for which both errors.Is(err, context.DeadlineExceeded) and
// errors.Is(err, ErrTransient) hold; the caller's own cancellation passes
// through unchanged.
func WithTimeout(p Provider, d time.Duration) Provider {
	if d <= 0 {
		d = DefaultRequestTimeout
	}
	return &timeoutProvider{Provider: p, d: d}
}

type timeoutProvider struct {
	Provider
	d time.Duration
}

func (t *timeoutProvider) ListPage(ctx context.Context, prefix, token string) (Page, error) {
	cctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	pg, err := t.Provider.ListPage(cctx, prefix, token)
	if err != nil {
		return Page{}, t.timedOut(ctx, cctx, fmt.Sprintf("list %q", prefix), err)
	}
	return pg, nil
}

// ListPageAfter implements StartAfterLister when the wrapped provider does
// (CanStartAfter tells); otherwise it fails with errors.ErrUnsupported.
func (t *timeoutProvider) ListPageAfter(ctx context.Context, prefix, startAfter string) (Page, error) {
	sa, ok := t.Provider.(StartAfterLister)
	if !ok {
		return Page{}, fmt.Errorf("list %q after %q: %w", prefix, startAfter, errors.ErrUnsupported)
	}
	cctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	pg, err := sa.ListPageAfter(cctx, prefix, startAfter)
	if err != nil {
		return Page{}, t.timedOut(ctx, cctx, fmt.Sprintf("list %q after %q", prefix, startAfter), err)
	}
	return pg, nil
}

func (t *timeoutProvider) Stat(ctx context.Context, key string) (Object, error) {
	cctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	o, err := t.Provider.Stat(cctx, key)
	if err != nil {
		return Object{}, t.timedOut(ctx, cctx, fmt.Sprintf("stat %q", key), err)
	}
	return o, nil
}

// timedOut marks err when it is this wrapper's deadline that ended the
// call, not the caller's context.
func (t *timeoutProvider) timedOut(ctx, cctx context.Context, what string, err error) error {
	if ctx.Err() != nil || !errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return err
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		// Some SDKs report the end of the context in their own words.
		err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return Classify(ErrTransient, fmt.Errorf("%s: no answer within requestTimeout %s: %w", what, t.d, err))
}

// Unwrap returns the provider WithTimeout wrapped.
func (t *timeoutProvider) Unwrap() Provider { return t.Provider }
