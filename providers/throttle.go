package providers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/imgly/syncer/internal/retry"
)

// DefaultThrottleBackoff is how a source backs off a store that throttles it
// (503 SlowDown, 429, Azure ServerBusy): waits from 1 s doubling to 30 s,
// jittered, for up to six retries of one call — about a minute and a half at
// most — before the call fails.
func DefaultThrottleBackoff() ThrottleBackoff {
	return ThrottleBackoff{Policy: retry.Policy{Min: time.Second, Max: 30 * time.Second}, Retries: 6}
}

// ThrottleBackoff says how often, and after which waits, a throttled call is
// tried again.
type ThrottleBackoff struct {
	Policy  retry.Policy
	Retries int
}

// WithThrottleBackoff returns p retrying each ListPage, ListPageAfter and
// Stat that fails with ErrThrottled after a jittered wait, up to b.Retries
// times. A store asking for less load then gets it, and the scan goes on
// where it was instead of failing and starting over at the next tick; a
// store that keeps refusing still fails the call (and the scan applies no
// deletions). Other errors pass through at once.
func WithThrottleBackoff(p Provider, b ThrottleBackoff) Provider {
	return &throttleProvider{Provider: p, b: b}
}

type throttleProvider struct {
	Provider
	b ThrottleBackoff
}

// Unwrap returns the provider WithThrottleBackoff wrapped.
func (t *throttleProvider) Unwrap() Provider { return t.Provider }

func (t *throttleProvider) ListPage(ctx context.Context, prefix, token string) (Page, error) {
	return backOff(ctx, t.b, func() (Page, error) { return t.Provider.ListPage(ctx, prefix, token) })
}

// ListPageAfter implements StartAfterLister when the wrapped provider does
// (CanStartAfter tells); otherwise it fails with errors.ErrUnsupported.
func (t *throttleProvider) ListPageAfter(ctx context.Context, prefix, startAfter string) (Page, error) {
	sa, ok := t.Provider.(StartAfterLister)
	if !ok {
		return Page{}, fmt.Errorf("list %q after %q: %w", prefix, startAfter, errors.ErrUnsupported)
	}
	return backOff(ctx, t.b, func() (Page, error) { return sa.ListPageAfter(ctx, prefix, startAfter) })
}

func (t *throttleProvider) Stat(ctx context.Context, key string) (Object, error) {
	return backOff(ctx, t.b, func() (Object, error) { return t.Provider.Stat(ctx, key) })
}

func backOff[T any](ctx context.Context, b ThrottleBackoff, call func() (T, error)) (T, error) {
	bo := b.Policy.Start()
	for tries := 0; ; tries++ {
		v, err := call()
		if err == nil || !errors.Is(err, ErrThrottled) || tries >= b.Retries || !bo.Wait(ctx) {
			if err != nil && errors.Is(err, ErrThrottled) && tries > 0 {
				err = fmt.Errorf("still throttled after %d retries: %w", tries, err)
			}
			return v, err
		}
	}
}
