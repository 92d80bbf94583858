package providers_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// BenchmarkWalkParallelLayouts reports, per key layout of the unit tests
// (pages of 50) and bench/s3server's (100,000 keys in 28 day directories,
// pages of 1000 as at 100,000 objects, and of 100 as at 1,000,000), a parallel walk's time (8 ranges) against a sequential
// one's over an in-memory store answering each request 10 ms late: the
// latency hidden, without the CPU of an S3 server and client. It logs the
// requests, the most in flight, and the ranges and splits:
//
//	go test ./providers -run '^$' -bench WalkParallelLayouts -benchtime 1x -v
func BenchmarkWalkParallelLayouts(b *testing.B) {
	all := layouts()
	var bench []string
	for i := range 100000 {
		id := fmt.Sprintf("%010d", i)
		bench = append(bench, "p/library/images/2026/11/"+strconv.Itoa(1+i%28)+"/"+id+"/photo-"+id+"-1080p.jpg")
	}
	slices.Sort(bench)
	all["s3server"] = bench
	// The same layout as bench/s3server's at 1,000,000 objects (36 pages
	// a directory), scaled down to pages of 100.
	all["s3server 1M-shaped"] = bench
	for name, keys := range all {
		if len(keys) < 1000 {
			continue
		}
		var in, peak atomic.Int64
		m := &memStore{keys: keys, pageSize: 50}
		switch name {
		case "s3server":
			m.pageSize = 1000
		case "s3server 1M-shaped":
			m.pageSize = 100
		}
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
		var st providers.ParallelStats
		collectB(b, func(fn func(providers.Page) error) error {
			return providers.WalkParallel(context.Background(), m, "p/", "", providers.ParallelOptions{Concurrency: 8, Stats: &st}, fn)
		})
		b.Logf("%s: seq %v par %v (%.2fx) requests %d (%d pages) peak %d, ranges %d, splits %d (%d empty)", name, seq, time.Since(t0),
			float64(time.Since(t0))/float64(seq), m.requests.Load(), (len(keys)+m.pageSize-1)/m.pageSize, peak.Load(), st.Ranges, st.Splits, st.EmptySplits)
	}
}

func collectB(b *testing.B, walk func(fn func(providers.Page) error) error) {
	if err := walk(func(providers.Page) error { return nil }); err != nil {
		b.Fatal(err)
	}
}
