package schedule

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers/s3"
)

// With the automatic concurrency, a scan lists its first pages in one
// sequence and goes on in ranges only when its process was mostly idle
// meanwhile: against a busy client the whole listing is one sequence (no
// request starts after a key), against an idle one it switches to ranges
// after the probe's last key. Either way the catalog ends equal to the
// bucket, and a rescan after deletions applies exactly those.
func TestProbeListingChoosesRanges(t *testing.T) {
	var ranged, lists atomic.Int64
	srv := testkit.StartS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Has("list-type") {
				lists.Add(1)
				if r.URL.Query().Get("start-after") != "" {
					ranged.Add(1)
				}
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
	p, err := s3.New(context.Background(), s3.Config(srv.ProviderConfig("lib")), s3.WithPageSize(50))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		busy   bool // the probe's process ran a core's worth of CPU
		ranges bool
	}{{"busy client", true, false}, {"idle client", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := catalog.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			cs := c.Source("s", p.Order())
			// A CPU clock that runs with the wall clock (busy) or stands
			// still (idle).
			t0 := time.Now()
			probe := &listProbe{minPages: 4, busyShare: 0.5, cpu: func() (time.Duration, bool) {
				if tc.busy {
					return time.Since(t0), true
				}
				return 0, true
			}}
			scan := func(objects int) Result {
				t.Helper()
				ranged.Store(0)
				lists.Store(0)
				res, err := Reconcile(context.Background(),
					Target{ID: "s", Provider: p, Catalog: cs, ListConcurrency: 8, ProbeListing: true},
					Options{SpillDir: t.TempDir(), probe: probe})
				if err != nil {
					t.Fatal(err)
				}
				if res.Ranges != tc.ranges {
					t.Fatalf("Ranges %v, want %v", res.Ranges, tc.ranges)
				}
				if tc.ranges && ranged.Load() < 3 {
					t.Fatalf("%d ranged requests of %d: the listing did not go on in ranges", ranged.Load(), lists.Load())
				}
				if pages := int64(objects+49) / 50; !tc.ranges && (ranged.Load() != 0 || lists.Load() != pages) {
					t.Fatalf("%d requests, %d ranged: want the %d pages of one sequence", lists.Load(), ranged.Load(), pages)
				}
				return res
			}
			if res := scan(len(all)); res.Added != len(all) {
				t.Fatalf("first scan added %d, want %d", res.Added, len(all))
			}
			if got := keys(t, cs); !slices.Equal(got, all) {
				t.Fatalf("catalog has %d keys, the bucket %d", len(got), len(all))
			}
			gone := map[string]bool{}
			t.Cleanup(func() { // the next subtest lists the whole bucket again
				for k := range gone {
					srv.Put(t, "lib", k, []byte("x"), "")
				}
			})
			for i := 0; i < len(all); i += 7 {
				srv.Delete(t, "lib", all[i])
				gone[all[i]] = true
			}
			if res := scan(len(all) - len(gone)); res.Deleted != len(gone) || res.Added != 0 || res.Modified != 0 {
				t.Fatalf("rescan: %+v, want %d deleted", res.Progress, len(gone))
			}
			want := slices.DeleteFunc(slices.Clone(all), func(k string) bool { return gone[k] })
			if got := keys(t, cs); !slices.Equal(got, want) {
				t.Fatalf("catalog has %d keys, the bucket %d", len(got), len(want))
			}
		})
	}
}

func keys(t *testing.T, cs *catalog.Source) []string {
	t.Helper()
	var out []string
	if err := cs.Range(context.Background(), "", func(e catalog.Entry) error {
		out = append(out, e.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// The CPU time read from schedstat grows while a thread spins. (On a
// loaded machine the spinning thread may run for less than the wall time:
// a quarter of it is asked for.)
func TestSchedRunCountsBusyThreads(t *testing.T) {
	d0, ok := schedRun()
	if !ok {
		t.Skip("no /proc/self/task/*/schedstat here")
	}
	start := time.Now()
	for time.Since(start) < 50*time.Millisecond {
	}
	d1, ok := schedRun()
	if !ok || d1-d0 < 12*time.Millisecond {
		t.Fatalf("CPU time grew %v over a 50 ms spin (ok %v)", d1-d0, ok)
	}
}
