package providers_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/providers"
)

// memStore is an in-memory store listing like S3: pages of pageSize keys
// after a token (the last key), and after any key. Its hooks fail or change
// the store between requests.
type memStore struct {
	mu       sync.Mutex
	keys     []string
	pageSize int
	requests atomic.Int64
	// hook, if set, runs before each request with the key it lists after;
	// an error fails the request.
	hook func(after string) error
}

func (m *memStore) page(after string) (providers.Page, error) {
	m.requests.Add(1)
	if m.hook != nil {
		if err := m.hook(after); err != nil {
			return providers.Page{}, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.SearchStrings(m.keys, after)
	if i < len(m.keys) && m.keys[i] == after {
		i++
	}
	var pg providers.Page
	for ; i < len(m.keys) && len(pg.Objects) < m.pageSize; i++ {
		pg.Objects = append(pg.Objects, providers.Object{Key: m.keys[i]})
	}
	if i < len(m.keys) {
		pg.Next = pg.Objects[len(pg.Objects)-1].Key
	}
	return pg, nil
}

func (m *memStore) insert(k string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.SearchStrings(m.keys, k)
	if i < len(m.keys) && m.keys[i] == k {
		return
	}
	m.keys = slices.Insert(m.keys, i, k)
}

func (m *memStore) ListPage(_ context.Context, _ string, token string) (providers.Page, error) {
	return m.page(token)
}

func (m *memStore) ListPageAfter(_ context.Context, _ string, after string) (providers.Page, error) {
	return m.page(after)
}
func (m *memStore) Stat(context.Context, string) (providers.Object, error) {
	return providers.Object{}, providers.ErrNotFound
}
func (m *memStore) Order() providers.Order { return providers.ByteOrder }
func (m *memStore) Close() error           { return nil }

func collect(t *testing.T, walk func(fn func(providers.Page) error) error) []string {
	t.Helper()
	var keys []string
	if err := walk(func(pg providers.Page) error {
		for _, o := range pg.Objects {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func layouts() map[string][]string {
	r := rand.New(rand.NewPCG(1, 2))
	l := map[string][]string{"empty": nil, "one": {"a"}}
	var ids, skewed, long, dates, binary []string
	for i := range 5000 {
		ids = append(ids, fmt.Sprintf("p/%08d.jpg", r.IntN(1e8)))
		if i < 50 {
			skewed = append(skewed, fmt.Sprintf("p/a/%03d", i))
		} else {
			skewed = append(skewed, fmt.Sprintf("p/zz/%06d", i))
		}
		long = append(long, "p/"+strings.Repeat("deep/", 20)+fmt.Sprintf("%06d", i))
		dates = append(dates, fmt.Sprintf("p/library/images/2026/%02d/%02d/%d/photo-%d-1080p.jpg", 1+i%12, 1+i%28, i, i))
		binary = append(binary, "p/"+string([]byte{byte(r.IntN(256)), byte(r.IntN(256)), 0xff, byte(i)}))
	}
	l["ids"], l["skewed"], l["long common prefix"], l["dates"], l["high bytes"] = ids, skewed, long, dates, binary
	// 500 directories of two keys each, then one dense directory.
	var sparse []string
	for i := range 1000 {
		sparse = append(sparse, fmt.Sprintf("p/a/%03d/%d", i/2, i))
	}
	for i := range 4000 {
		sparse = append(sparse, fmt.Sprintf("p/b/%06d", i*7))
	}
	l["sparse then dense"] = sparse
	l["page and one"] = ids[:101]
	for k, v := range l {
		slices.Sort(v)
		l[k] = slices.Compact(v)
	}
	return l
}

// Every layout comes out exactly as a sequential walk has it, from the start
// and after a key.
func TestWalkParallelExact(t *testing.T) {
	for name, keys := range layouts() {
		t.Run(name, func(t *testing.T) {
			for _, after := range []string{"", "p/5", "p/zz/002000"} {
				m := &memStore{keys: keys, pageSize: 100}
				want := collect(t, func(fn func(providers.Page) error) error {
					return providers.WalkAfter(context.Background(), m, "p/", after, fn)
				})
				seq := m.requests.Swap(0)
				got := collect(t, func(fn func(providers.Page) error) error {
					return providers.WalkParallel(context.Background(), m, "p/", after, providers.ParallelOptions{Concurrency: 8}, fn)
				})
				if !slices.Equal(got, want) {
					t.Fatalf("after %q: %d keys, want %d (first difference at %d)", after, len(got), len(want), firstDiff(got, want))
				}
				t.Logf("after %q: %d keys, %d requests sequential, %d parallel", after, len(want), seq, m.requests.Load())
				if par := m.requests.Load(); seq <= 1 && par != seq {
					t.Errorf("after %q: a one-page listing took %d requests", after, par)
				}
			}
		})
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Keys written between pages: every key present throughout comes out once,
// in order; the new ones at most once.
func TestWalkParallelWritesBetweenPages(t *testing.T) {
	keys := layouts()["ids"]
	m := &memStore{keys: slices.Clone(keys), pageSize: 50}
	var n atomic.Int64
	m.hook = func(string) error {
		i := n.Add(1)
		m.insert(fmt.Sprintf("p/%08d.new", (i*7919)%1e8))
		return nil
	}
	got := collect(t, func(fn func(providers.Page) error) error {
		return providers.WalkParallel(context.Background(), m, "p/", "", providers.ParallelOptions{Concurrency: 8}, fn)
	})
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatal("keys out of order or repeated")
	}
	seen := map[string]bool{}
	for _, k := range got {
		seen[k] = true
	}
	for _, k := range keys {
		if !seen[k] {
			t.Fatalf("%s, present throughout, not listed", k)
		}
	}
}

// A range that fails fails the walk; a throttled one slows it down only.
func TestWalkParallelFailureAndThrottling(t *testing.T) {
	keys := layouts()["dates"]
	m := &memStore{keys: keys, pageSize: 100}
	var calls atomic.Int64
	boom := errors.New("range failed")
	m.hook = func(after string) error {
		if calls.Add(1) == 12 {
			return providers.Classify(providers.ErrTransient, boom)
		}
		return nil
	}
	err := providers.WalkParallel(context.Background(), m, "p/", "", providers.ParallelOptions{Concurrency: 8},
		func(providers.Page) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("walk with a failing range: %v", err)
	}

	calls.Store(0)
	m.hook = func(string) error {
		if c := calls.Add(1); c > 3 && c%4 == 0 {
			return providers.Classify(providers.ErrThrottled, errors.New("503 SlowDown"))
		}
		return nil
	}
	got := collect(t, func(fn func(providers.Page) error) error {
		return providers.WalkParallel(context.Background(), m, "p/", "", providers.ParallelOptions{Concurrency: 8,
			Throttled: providers.ThrottleBackoff{Policy: retry.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}, Retries: 8}}, fn)
	})
	if !slices.Equal(got, keys) {
		t.Fatalf("throttled walk: %d keys, want %d", len(got), len(keys))
	}
}

// fn's error ends the walk with it, and the walk's goroutines with it.
func TestWalkParallelStopsOnCallbackError(t *testing.T) {
	m := &memStore{keys: layouts()["ids"], pageSize: 10}
	stop := errors.New("stop")
	pages := 0
	err := providers.WalkParallel(context.Background(), m, "p/", "", providers.ParallelOptions{Concurrency: 8},
		func(providers.Page) error {
			if pages++; pages == 5 {
				return stop
			}
			return nil
		})
	if !errors.Is(err, stop) {
		t.Fatalf("err %v, want the callback's", err)
	}
}

// gatedStore is a memStore whose requests take a millisecond (so that ranges
// overlap) and which counts the requests in flight.
func gatedStore(keys []string, pageSize int) (*memStore, *atomic.Int64) {
	m := &memStore{keys: keys, pageSize: pageSize}
	var in, peak atomic.Int64
	m.hook = func(string) error {
		n := in.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(time.Millisecond) // the store's latency, not synchronisation
		in.Add(-1)
		return nil
	}
	return m, &peak
}

// Ranges being listed are split while the plan cannot cut ahead, and the
// walk stays exact on every layout, the bad ones included (random high
// bytes, one dense directory after many sparse ones), with no more requests
// in flight than Concurrency even while the merge holds the ranges back.
func TestWalkParallelSplitsExact(t *testing.T) {
	for name, keys := range layouts() {
		if len(keys) < 1000 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			m, peak := gatedStore(keys, 10)
			var st providers.ParallelStats
			hold := true
			got := collect(t, func(fn func(providers.Page) error) error {
				return providers.WalkParallel(context.Background(), m, "p/", "", providers.ParallelOptions{Concurrency: 4, Stats: &st},
					func(pg providers.Page) error {
						// A slow merge at first: the ranges after the first
						// fill their read-ahead and must give up their slots.
						for deadline := time.Now().Add(2 * time.Second); hold && m.requests.Load() < 6 && time.Now().Before(deadline); {
							runtime.Gosched()
						}
						if hold {
							t.Logf("held the merge until %d requests", m.requests.Load())
						}
						hold = false
						return fn(pg)
					})
			})
			if !slices.Equal(got, keys) {
				t.Fatalf("%d keys, want %d (first difference at %d)", len(got), len(keys), firstDiff(got, keys))
			}
			if p := peak.Load(); p > 4 {
				t.Errorf("%d requests in flight, Concurrency 4", p)
			}
			t.Logf("%d requests for %d pages, %+v", m.requests.Load(), (len(keys)+9)/10, st)
			if name == "ids" && st.Splits == 0 {
				t.Errorf("no range split on a uniform layout: %+v", st)
			}
		})
	}
}

// A request failing once ranges are being split fails the walk with its
// error, and what the walk handed over before is exactly the listing's
// beginning.
func TestWalkParallelSplitFailure(t *testing.T) {
	keys := layouts()["ids"]
	m, _ := gatedStore(keys, 10)
	boom := errors.New("split range failed")
	sleep := m.hook
	m.hook = func(after string) error {
		if m.requests.Load() == 150 {
			return providers.Classify(providers.ErrTransient, boom)
		}
		return sleep(after)
	}
	var got []string
	var st providers.ParallelStats
	err := providers.WalkParallel(context.Background(), m, "p/", "", providers.ParallelOptions{Concurrency: 8, Stats: &st},
		func(pg providers.Page) error {
			for _, o := range pg.Objects {
				got = append(got, o.Key)
			}
			return nil
		})
	if !errors.Is(err, boom) {
		t.Fatalf("walk with a failing range: %v (%+v)", err, st)
	}
	if len(got) >= len(keys) || !slices.Equal(got, keys[:len(got)]) {
		t.Fatalf("%d keys handed over before the failure, not the listing's first ones", len(got))
	}
	t.Logf("%d keys before the failure, %+v", len(got), st)
}
