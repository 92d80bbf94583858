package providers_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// BenchmarkWalkParallelLayouts reports, per key layout of the unit tests,
// a parallel walk's time against a sequential one's over a store answering
// in 10 ms, its requests and the most in flight:
//
//	go test ./providers -run '^$' -bench WalkParallelLayouts -benchtime 1x -v
func BenchmarkWalkParallelLayouts(b *testing.B) {
	for name, keys := range layouts() {
		if len(keys) < 1000 {
			continue
		}
		var in, peak atomic.Int64
		m := &memStore{keys: keys, pageSize: 50}
		m.hook = func(string) error {
			n := in.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(10 * time.Millisecond)
			in.Add(-1)
			return nil
		}
		t0 := time.Now()
		collectB(b, func(fn func(providers.Page) error) error {
			return providers.WalkAfter(context.Background(), m, "p/", "", fn)
		})
		seq := time.Since(t0)
		m.requests.Store(0)
		peak.Store(0)
		t0 = time.Now()
		collectB(b, func(fn func(providers.Page) error) error {
			return providers.WalkParallel(context.Background(), m, "p/", "", providers.ParallelOptions{Concurrency: 8}, fn)
		})
		b.Logf("%s: seq %v par %v (%.2fx) requests %d peak %d", name, seq, time.Since(t0), float64(time.Since(t0))/float64(seq), m.requests.Load(), peak.Load())
	}
}

func collectB(b *testing.B, walk func(fn func(providers.Page) error) error) {
	if err := walk(func(providers.Page) error { return nil }); err != nil {
		b.Fatal(err)
	}
}
