package s3_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/s3"
	"github.com/imgly/syncer/schedule"
)

// A scan through a store that answers 200 with a non-listing, or stalls,
// fails and deletes nothing; once the store is back, the next scan commits
// the object added meanwhile.
func TestScanThroughFaults(t *testing.T) {
	srv := testkit.StartS3(t, nil)
	srv.CreateBucket(t, "bkt")
	proxy := testkit.StartFaultProxy(t, srv.URL, 1)
	src := s3.Config(srv.ProviderConfig("bkt"))
	src.Endpoint = proxy.URL
	ap, err := s3.New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = time.Second
	p := providers.WithTimeout(ap, timeout)

	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cs := c.Source("s", p.Order())
	scan := func() (schedule.Result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return schedule.Reconcile(ctx, schedule.Target{ID: "s", Provider: p, Catalog: cs}, schedule.Options{})
	}
	catalogKeys := func() string {
		var keys []string
		if err := cs.Range(context.Background(), "", func(e catalog.Entry) error {
			keys = append(keys, e.Key)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(keys, ",")
	}

	srv.Put(t, "bkt", "a.txt", []byte("a"), "")
	srv.Put(t, "bkt", "b.txt", []byte("b"), "")
	if res, err := scan(); err != nil || res.Added != 2 {
		t.Fatalf("first scan: %+v, %v", res, err)
	}

	// An empty 200 would read as an empty bucket: two deletions.
	proxy.Rate(1, testkit.IsGET, testkit.Body("application/xml", nil))
	res, err := scan()
	if !errors.Is(err, providers.ErrNotListing) || res.Deleted != 0 {
		t.Fatalf("scan of a non-listing: %+v, %v; want ErrNotListing and no deletions", res, err)
	}
	proxy.Clear()

	// A stalled store: the scan ends within about the timeout.
	proxy.Rate(1, testkit.IsGET, testkit.Stall())
	srv.Put(t, "bkt", "c.txt", []byte("c"), "")
	start := time.Now()
	res, err = scan()
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("requestTimeout %s", timeout)) || res.Deleted != 0 {
		t.Fatalf("stalled scan: %+v, %v; want an error naming requestTimeout, no deletions", res, err)
	}
	if took > timeout+5*time.Second { // generous: the machine may be loaded
		t.Errorf("stalled scan took %v with a %v timeout", took, timeout)
	}
	t.Logf("stalled scan failed after %v: %v", took, err)
	if got := catalogKeys(); got != "a.txt,b.txt" {
		t.Fatalf("catalog after the failed scans: %s", got)
	}

	proxy.Clear()
	proxy.Release()
	if res, err := scan(); err != nil || res.Added != 1 || res.Deleted != 0 {
		t.Fatalf("scan after the stall: %+v, %v; want c.txt added", res, err)
	}
	if got := catalogKeys(); got != "a.txt,b.txt,c.txt" {
		t.Fatalf("catalog after recovery: %s", got)
	}
}

// A store that throttles (503 SlowDown) for longer than the SDK's own quick
// retries is backed off and tried again: the scan completes instead of
// failing. Without the backoff the same faults fail it.
func TestScanBacksOffAThrottlingStore(t *testing.T) {
	srv := testkit.StartS3(t, nil)
	srv.CreateBucket(t, "bkt")
	srv.Put(t, "bkt", "a.txt", []byte("a"), "")
	proxy := testkit.StartFaultProxy(t, srv.URL, 1)
	src := s3.Config(srv.ProviderConfig("bkt"))
	src.Endpoint = proxy.URL
	ap, err := s3.New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	quick := providers.ThrottleBackoff{Policy: retry.Policy{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}, Retries: 8}
	for _, tc := range []struct {
		name string
		p    providers.Provider
		ok   bool
	}{{"without backoff", ap, false}, {"with backoff", providers.WithThrottleBackoff(ap, quick), true}} {
		proxy.Next(12, testkit.IsGET, testkit.Status(503, "SlowDown"))
		cs := c.Source(tc.name, ap.Order())
		res, err := schedule.Reconcile(context.Background(), schedule.Target{ID: "s", Provider: tc.p, Catalog: cs}, schedule.Options{})
		if tc.ok && (err != nil || res.Added != 1) {
			t.Errorf("%s: %+v, %v; want the scan to complete", tc.name, res.Progress, err)
		}
		if !tc.ok && (err == nil || !errors.Is(err, providers.ErrThrottled)) {
			t.Errorf("%s: %v; want a throttled failure", tc.name, err)
		}
		proxy.Clear()
	}
}
