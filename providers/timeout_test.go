package providers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// blocking answers nothing until its context ends, like a stalled store.
type blocking struct{}

func (blocking) ListPage(ctx context.Context, _, _ string) (providers.Page, error) {
	<-ctx.Done()
	return providers.Page{}, ctx.Err()
}
func (blocking) Stat(ctx context.Context, _ string) (providers.Object, error) {
	<-ctx.Done()
	return providers.Object{}, errors.New("sdk: request canceled") // in its own words
}
func (blocking) Order() providers.Order { return providers.ByteOrder }
func (blocking) Close() error           { return nil }

func TestWithTimeout(t *testing.T) {
	p := providers.WithTimeout(blocking{}, 50*time.Millisecond)
	err := providers.Walk(context.Background(), p, "img/", func(providers.Page) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, providers.ErrTransient) ||
		!strings.Contains(err.Error(), `list "img/": no answer within requestTimeout 50ms`) {
		t.Errorf("list: %v", err)
	}
	_, err = p.Stat(context.Background(), "k")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "requestTimeout 50ms") {
		t.Errorf("stat: %v", err)
	}
	// The caller's own cancellation is not dressed up as a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.ListPage(ctx, "", ""); !errors.Is(err, context.Canceled) || retryable(err) {
		t.Errorf("cancelled: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := providers.WithTimeout(blocking{}, time.Hour).ListPage(ctx, "", ""); err == nil || strings.Contains(err.Error(), "requestTimeout") {
		t.Errorf("caller's deadline: %v", err)
	}
}

func TestKindOfStatus(t *testing.T) {
	for status, want := range map[int]error{
		http.StatusTooManyRequests: providers.ErrThrottled, http.StatusServiceUnavailable: providers.ErrThrottled,
		http.StatusInternalServerError: providers.ErrTransient, http.StatusBadGateway: providers.ErrTransient,
		http.StatusRequestTimeout: providers.ErrTransient, http.StatusForbidden: providers.ErrPermission,
		http.StatusUnauthorized: providers.ErrPermission, http.StatusNotFound: providers.ErrNotFound,
		http.StatusBadRequest: providers.ErrInvalidArguments, http.StatusConflict: nil, http.StatusOK: nil,
	} {
		if got := providers.KindOfStatus(status); got != want {
			t.Errorf("KindOfStatus(%d) = %v, want %v", status, got, want)
		}
	}
	err := providers.NotListing("ListObjectsV2", "empty body")
	if !errors.Is(err, providers.ErrNotListing) || !errors.Is(err, providers.ErrTransient) || err.Error() != "ListObjectsV2: response is not a listing: empty body" {
		t.Errorf("NotListing: %v", err)
	}
	wrapped := fmt.Errorf(`Get "http://x/?sig=1": %w`, err)
	if got := providers.AsNotListing(wrapped); got == nil || got.Error() != err.Error() {
		t.Errorf("AsNotListing(%v) = %v", wrapped, got)
	}
	if got := providers.AsNotListing(providers.Classify(providers.ErrTransient, errors.New("x"))); got != nil {
		t.Errorf("AsNotListing of another error: %v", got)
	}
}

// retryable reports whether err is of a kind a later attempt may cure.
func retryable(err error) bool {
	return errors.Is(err, providers.ErrThrottled) || errors.Is(err, providers.ErrTransient)
}
