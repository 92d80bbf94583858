package ownership_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog/pgcatalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/ownership"
)

func TestTarget(t *testing.T) {
	for _, c := range []struct{ s, r, want int }{{4, 2, 2}, {5, 2, 3}, {5, 3, 2}, {1, 3, 1}, {3, 0, 3}, {0, 2, 0}} {
		if got := ownership.Target(c.s, c.r); got != c.want {
			t.Errorf("Target(%d, %d) = %d, want %d", c.s, c.r, got, c.want)
		}
	}
}

// running tracks which replica runs each source's work, failing the test
// if two ever do at once.
type running struct {
	t  *testing.T
	mu sync.Mutex
	by map[string]string
}

func (r *running) run(replica string) func(ctx context.Context, source string, c *ownership.Claim) {
	return func(ctx context.Context, source string, c *ownership.Claim) {
		r.mu.Lock()
		if other, ok := r.by[source]; ok {
			r.t.Errorf("%s: %s starts while %s still runs it", source, replica, other)
		}
		r.by[source] = replica
		r.mu.Unlock()
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // draining takes a while; the lease must wait for it
		r.mu.Lock()
		delete(r.by, source)
		r.mu.Unlock()
	}
}

func (r *running) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[string]int{}
	for _, rep := range r.by {
		n[rep]++
	}
	return n
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Replicas split the sources evenly, hand some over when one joins (the
// old owner's work stops before the new one's starts) and take everything
// back at once when one stops and releases.
func TestRebalance(t *testing.T) {
	dsn := testkit.StartPostgres(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, err := pgcatalog.Open(ctx, dsn, pgcatalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	leases, err := pgcatalog.LeasesOf(c)
	if err != nil {
		t.Fatal(err)
	}
	sources := []string{"s1", "s2", "s3", "s4"}
	r := &running{t: t, by: map[string]string{}}
	start := func(ctx context.Context, replica string) (stop func()) {
		m := ownership.New(leases, ownership.Options{Replica: replica, Sources: sources,
			TTL: 3 * time.Second, Renew: 200 * time.Millisecond, Run: r.run(replica)})
		mctx, mcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); m.Run(mctx) }()
		return func() { mcancel(); <-done }
	}
	stopA := start(ctx, "a")
	defer stopA()
	waitFor(t, "a owning all four", 10*time.Second, func() bool { return r.counts()["a"] == 4 })
	stopB := start(ctx, "b")
	waitFor(t, "a and b owning two each", 15*time.Second, func() bool {
		n := r.counts()
		return n["a"] == 2 && n["b"] == 2
	})
	stopB()
	// b released its leases: a takes them well before they would expire.
	t0 := time.Now()
	waitFor(t, "a owning all four again", 10*time.Second, func() bool { return r.counts()["a"] == 4 })
	t.Logf("b's sources moved to a in %v after b stopped", time.Since(t0))
	rows, err := leases.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if row.Live && row.Source[0] == 's' && row.Owner != "a" {
			t.Errorf("lease %s: owner %s, want a", row.Source, row.Owner)
		}
	}
}
