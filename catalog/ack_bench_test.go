package catalog

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// fillOutbox commits n additions to s in batches, as a first scan does.
func fillOutbox(b testing.TB, s *Source, n int) {
	b.Helper()
	const batch = 5000
	for i := 0; i < n; i += batch {
		muts := make([]Mutation, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			muts = append(muts, upsert(providers.Object{Key: fmt.Sprintf("images/%09d.jpg", j), ETag: "e", Size: int64(j)}))
		}
		if _, err := s.Commit(context.Background(), muts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAck measures dropping a first import's outbox: all of it at once
// (what `syncer scan` does after its flush) and one event's worth at a time
// (what `syncer run` does), against committing the import itself, in one run.
func BenchmarkAck(b *testing.B) {
	const n = 200_000
	for _, mode := range []string{"commit", "all", "per500"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				c := openT(b, b.TempDir())
				s := c.Source("s", providers.ByteOrder)
				if mode != "commit" {
					fillOutbox(b, s, n)
				}
				b.StartTimer()
				switch mode {
				case "commit":
					fillOutbox(b, s, n)
				case "all":
					if err := s.Ack(context.Background(), n); err != nil {
						b.Fatal(err)
					}
				case "per500":
					for through := uint64(500); through <= n; through += 500 {
						if err := s.Ack(context.Background(), through); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				if st, err := s.Stats(context.Background()); err != nil || (mode != "commit" && st.Pending != 0) {
					b.Fatalf("stats %+v, %v", st, err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkNotifyDuringImport measures notification commits at 200/s while
// a first import of 200,000 objects commits its batches of 5,000 at the
// bare listing's pace in bench/scan.sh (about 50,000 objects/s, a batch
// every 100 ms) and its published changes are dropped from the outbox as
// `syncer scan` and `syncer run` drop them (once a second, through the last
// committed change): the commit latency a webhook sees while a bucket is
// imported, without the drops and with them. Each notification is committed on a goroutine of its own, as
// concurrent webhook requests are. import-s is the import's wall time (at
// least 4 s, its pace): what the notifications cost it.
//
//	go test -run '^$' -bench NotifyDuringImport -benchtime 1x -count 3 ./catalog/
func BenchmarkNotifyDuringImport(b *testing.B) {
	for _, acks := range []bool{false, true} {
		b.Run(fmt.Sprintf("acks=%v", acks), func(b *testing.B) { benchNotifyDuringImport(b, acks) })
	}
}

func benchNotifyDuringImport(b *testing.B, acks bool) {
	const n, batch, pace, rate = 200_000, 5000, 100 * time.Millisecond, 200
	for range b.N {
		b.StopTimer()
		c := openT(b, b.TempDir())
		s := c.Source("s", providers.ByteOrder)
		ctx := context.Background()
		imported := make(chan struct{})
		importErr := make(chan error, 1)
		var took time.Duration // the import's wall time: what giving way to notifications costs it
		go func() {
			defer close(imported)
			t0 := time.Now()
			importErr <- importPaced(ctx, s, n, batch, pace)
			took = time.Since(t0)
		}()
		acksDone := make(chan struct{})
		go func() {
			defer close(acksDone)
			if acks {
				ackEverySecond(ctx, b, s, imported)
			}
		}()
		b.StartTimer()
		lat := notifyUntil(ctx, b, s, rate, imported)
		b.StopTimer()
		<-acksDone
		if err := <-importErr; err != nil {
			b.Fatal(err)
		}
		if len(lat) == 0 {
			b.Fatal("no notification committed during the import")
		}
		b.ReportMetric(took.Seconds(), "import-s")
		b.ReportMetric(float64(len(lat)), "notifications")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		c.Close()
	}
}

// importPaced commits n additions in batches, one batch per pace at most.
func importPaced(ctx context.Context, s *Source, n, batch int, pace time.Duration) error {
	t := time.NewTicker(pace)
	defer t.Stop()
	for i := 0; i < n; i += batch {
		muts := make([]Mutation, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			muts = append(muts, upsert(providers.Object{Key: fmt.Sprintf("images/%09d.jpg", j), ETag: "e", Size: int64(j)}))
		}
		if _, err := s.Commit(ctx, muts); err != nil {
			return err
		}
		<-t.C
	}
	return nil
}

// notifyUntil commits one notification every 1/rate s, each on its own
// goroutine, until stop is closed, and returns their commit latencies sorted.
func notifyUntil(ctx context.Context, b *testing.B, s *Source, rate int, stop <-chan struct{}) []time.Duration {
	var (
		mu  sync.Mutex
		lat []time.Duration
		wg  sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			wg.Wait()
			slices.Sort(lat)
			return lat
		case <-tick.C:
		}
		m := Mutation{Object: providers.Object{Key: fmt.Sprintf("notified/%06d.jpg", i), ETag: "n", Size: 1},
			Origin: Notification, Sequencer: fmt.Sprintf("%016x", i)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if _, err := s.Commit(ctx, []Mutation{m}); err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
		}()
	}
}

// ackEverySecond drops s's outbox through its last change once a second
// until imported is closed, as Publisher.Follow does behind its publishing.
func ackEverySecond(ctx context.Context, b *testing.B, s *Source, imported <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-imported:
			return
		case <-t.C:
		}
		last, err := s.LastSeq(ctx)
		if err == nil {
			err = s.Ack(ctx, last)
		}
		if err != nil {
			b.Error(err)
			return
		}
	}
}
