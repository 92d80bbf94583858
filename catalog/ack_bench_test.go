package catalog

import (
	"context"
	"fmt"
	"testing"

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
