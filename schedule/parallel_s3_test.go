package schedule_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/s3"
	"github.com/imgly/syncer/schedule"
)

// A scan listing an S3 bucket in parallel ranges (gofakes3 behind the fault
// proxy) records exactly the bucket; one whose range fails applies no
// deletions; the next one does.
func TestParallelListingS3(t *testing.T) {
	var ranged atomic.Int64 // list requests starting after a key: ranges
	srv := testkit.StartS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("start-after") != "" {
				ranged.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	srv.CreateBucket(t, "lib")
	var all []string
	for i := range 1500 {
		k := fmt.Sprintf("img/%02d/%06d.jpg", i%30, i*7)
		all = append(all, k)
		srv.Put(t, "lib", k, []byte("x"), "")
	}
	slices.Sort(all)
	proxy := testkit.StartFaultProxy(t, srv.URL, 1)
	pc := s3.Config(srv.ProviderConfig("lib"))
	pc.Endpoint = proxy.URL
	ap, err := s3.New(context.Background(), pc, s3.WithPageSize(50))
	if err != nil {
		t.Fatal(err)
	}
	p := providers.WithTimeout(ap, 0)
	cs := openSource(t, p.Order())
	scan := func() (schedule.Result, error) {
		return schedule.Reconcile(context.Background(),
			schedule.Target{ID: "s", Provider: p, Catalog: cs, Guard: &schedule.Guard{MaxDeletePercent: 50}, ListConcurrency: 8},
			schedule.Options{SpillDir: t.TempDir()})
	}
	res, err := scan()
	if err != nil || res.Added != len(all) {
		t.Fatalf("first scan: %+v %v", res, err)
	}
	if got := keys(t, cs); !slices.Equal(got, all) {
		t.Fatalf("catalog has %d keys, the bucket %d", len(got), len(all))
	}
	if ranged.Load() < 3 {
		t.Fatalf("%d ranged list requests: the listing was not split", ranged.Load())
	}

	for _, k := range all[:100] {
		srv.Delete(t, "lib", k)
	}
	// Every attempt at the third range's first request fails.
	var (
		mu     sync.Mutex
		n      int
		target string
	)
	proxy.Rate(1, func(r *http.Request) bool {
		sa := r.URL.Query().Get("start-after")
		if sa == "" {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 3 {
			target = sa
		}
		return sa == target
	}, testkit.Status(http.StatusInternalServerError, "InternalError"))
	res, err = scan()
	if err == nil || res.Deleted != 0 {
		t.Fatalf("scan with a failing range: %+v %v, want an error and no deletions", res, err)
	}
	if got := keys(t, cs); len(got) != len(all) {
		t.Fatalf("catalog has %d keys after a failed listing, want all %d", len(got), len(all))
	}
	proxy.Clear()
	res, err = scan()
	if err != nil || res.Deleted != 100 {
		t.Fatalf("rescan: %+v %v, want 100 deleted", res, err)
	}
	if got := keys(t, cs); !slices.Equal(got, all[100:]) {
		t.Fatalf("catalog has %d keys, the bucket %d", len(got), len(all)-100)
	}
}
