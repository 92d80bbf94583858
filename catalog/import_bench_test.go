package catalog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// benchImportBatch returns bench/s3server's objects number from to
// from+n-1 in the order a listing returns them, with the mtime and size
// each would have there: put in index order (so mtime follows the index,
// not the key: days are spread round-robin), body "jpeg <i>". Generated
// batch by batch so that the objects do not weigh on the measured heap.
func benchImportBatch(total, from, n int) []providers.Object {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	objs := make([]providers.Object, 0, n)
	pos := 0
	for _, day := range benchDays() {
		count := (total - (day - 1) + 27) / 28 // i = day-1 + 28k < total
		if pos+count <= from {
			pos += count
			continue
		}
		for k := max(0, from-pos); k < count && len(objs) < n; k++ {
			i := day - 1 + 28*k
			id := fmt.Sprintf("%010d", i)
			objs = append(objs, providers.Object{
				Key:          "library/images/2026/11/" + strconv.Itoa(day) + "/" + id + "/photo-" + id + "-1080p.jpg",
				Size:         int64(len("jpeg " + strconv.Itoa(i))),
				LastModified: t0.Add(time.Duration(i) * 20 * time.Microsecond),
				ETag:         fmt.Sprintf("\"%032x\"", i),
			})
		}
		pos += count
		if len(objs) == n {
			break
		}
	}
	return objs
}

// benchDays are the day directories 1..28 in key order ("1", "10", ...).
func benchDays() []int {
	days := make([]int, 28)
	for i := range days {
		days[i] = i + 1
	}
	slices.SortFunc(days, func(a, b int) int { return strings.Compare(strconv.Itoa(a), strconv.Itoa(b)) })
	return days
}

// procWritten is the bytes this process has written (wchar of
// /proc/self/io: every write and pwrite, bbolt's included).
func procWritten(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		tb.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Skip("no wchar in /proc/self/io")
	return 0
}

// heapPeak samples the Go heap's in-use bytes every 2 ms until stopped and
// returns the largest: the part of a process's anonymous RSS a commit's
// transaction decides.
func heapPeak() (stop func() uint64) {
	done := make(chan struct{})
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64()+sample[1].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak }
}

// BenchmarkIndexedImport commits a first import of bench/s3server's
// objects, in listing order and in the scan's batches of 5,000, into an
// indexed source (its indexes maintained by each commit, or deferred and
// built at the end) and an unindexed one: the catalog's side of
// `INDEX=1 bench/scan.sh`, without the listing. It reports the peak of the
// Go heap in use (sampled), the bytes written and the catalog's size.
//
//	SYNCER_BENCH_IMPORT=200000 go test -run '^$' -bench IndexedImport -benchtime 1x ./catalog/
func BenchmarkIndexedImport(b *testing.B) {
	n := 200_000
	if v := os.Getenv("SYNCER_BENCH_IMPORT"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"false", "true", "deferred"} {
		indexed := mode != "false"
		b.Run("index="+mode, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				c := openT(b, dir)
				s := c.Source("s", providers.ByteOrder).Indexed(indexed)
				runtime.GC()
				w0 := procWritten(b)
				stop := heapPeak()
				b.StartTimer()
				if mode == "deferred" {
					if err := s.DeferIndexes(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				const batch = 5000
				listed := time.Now()
				for i := 0; i < n; i += batch {
					muts := make([]Mutation, 0, batch)
					for _, o := range benchImportBatch(n, i, min(batch, n-i)) {
						muts = append(muts, Mutation{Object: o, Origin: Scan, Guard: true, ListedAt: listed})
					}
					if _, err := s.Commit(context.Background(), muts); err != nil {
						b.Fatal(err)
					}
				}
				if mode == "deferred" {
					b0 := time.Now()
					if _, err := s.BuildIndexes(context.Background()); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(time.Since(b0).Seconds(), "build-s")
				}
				b.StopTimer()
				peak := stop()
				written := procWritten(b) - w0
				st, err := os.Stat(dir + "/catalog.db")
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MiB")
				b.ReportMetric(float64(written)/(1<<20), "written-MiB")
				b.ReportMetric(float64(st.Size())/float64(n), "file-bytes/obj")
				ds := c.bolt().Stats()
				b.ReportMetric(float64(ds.FreePageN), "free-pages")
				b.ReportMetric(float64(ds.TxStats.GetWrite()), "page-writes")
				c.Close()
			}
		})
	}
}

func TestBenchImportBatch(t *testing.T) {
	const n = 1000
	var all []providers.Object
	for i := 0; i < n; i += 64 {
		all = append(all, benchImportBatch(n, i, min(64, n-i))...)
	}
	if len(all) != n || !slices.IsSortedFunc(all, func(a, b providers.Object) int { return strings.Compare(a.Key, b.Key) }) {
		t.Fatalf("%d objects, sorted %v", len(all), slices.IsSortedFunc(all, func(a, b providers.Object) int { return strings.Compare(a.Key, b.Key) }))
	}
	seen := map[string]bool{}
	for _, o := range all {
		seen[o.Key] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct keys", len(seen))
	}
}
