package catalog

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// txID is the id of the catalog's last committed write transaction.
func txID(t *testing.T, c *Catalog) int {
	t.Helper()
	var id int
	if err := c.bolt().View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// An indexed scan batch whose keys land all over the order indexes is
// committed in several transactions, each bounded in the nodes it holds
// (scanTxNodes), with every change committed once, in order, and the
// indexes complete; an unindexed batch of the same keys, sequential in
// every tree it touches, stays one transaction.
func TestIndexedScanBatchBoundsTransactions(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1_700_000_000, 0).UTC()
	// Keys in key order, with names, sizes and times in no relation to it.
	objs := func(n, from int) []Mutation {
		m := make([]Mutation, n)
		for i := range m {
			m[i] = Mutation{Object: providers.Object{
				Key:          fmt.Sprintf("lib/%08d/%016x.jpg", from+i, rng.Uint64()),
				Size:         rng.Int64N(1 << 30),
				LastModified: t0.Add(time.Duration(rng.Int64N(1e15))),
				ETag:         fmt.Sprintf("e%d", rng.Uint32()),
			}, Origin: Scan, Guard: true}
		}
		return m
	}
	for _, indexed := range []bool{true, false} {
		t.Run(fmt.Sprint("indexed=", indexed), func(t *testing.T) {
			c := openT(t, t.TempDir())
			s := c.Source("s", providers.ByteOrder).Indexed(indexed)
			// A smaller bound, so that trees of a few thousand keys
			// exceed it as those of a large source exceed scanTxNodes.
			const bound = 64
			s.b.(*boltSource).txNodes = bound
			if _, err := s.Commit(ctx, objs(2_000, 0)); err != nil {
				t.Fatal(err)
			}
			before := txID(t, c)
			batch := objs(1_000, 2_000)
			changes, err := s.Commit(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			txs := txID(t, c) - before
			if len(changes) != len(batch) {
				t.Fatalf("%d changes for %d additions", len(changes), len(batch))
			}
			for i, ch := range changes {
				if ch.Seq != uint64(2_001+i) || ch.Object.Key != batch[i].Object.Key || ch.Op != Added {
					t.Fatalf("change %d: %+v, want seq %d added %s", i, ch, 2_001+i, batch[i].Object.Key)
				}
			}
			// Every entry holds what its mutation said: the transactions
			// of a batch share one arena, which must not be rewritten
			// while bbolt still holds keys or values carved from it.
			want := map[string]providers.Object{}
			for _, m := range batch {
				want[m.Object.Key] = m.Object
			}
			if err := s.Range(ctx, "lib/00001999~", func(e Entry) error {
				w, ok := want[e.Key]
				if !ok || w.Size != e.Size || !w.LastModified.Equal(e.LastModified) || w.ETag != e.ETag {
					return fmt.Errorf("entry %s: %+v, want %+v", e.Key, e.Object, w)
				}
				delete(want, e.Key)
				return nil
			}); err != nil || len(want) != 0 {
				t.Fatalf("entries: %v; %d missing", err, len(want))
			}
			if !indexed {
				if txs != 1 {
					t.Fatalf("unindexed batch took %d transactions, want 1", txs)
				}
				return
			}
			// Each key dirties a leaf in three order indexes (random names,
			// sizes and times), most of them distinct in trees of
			// ~50 leaves: a few hundred nodes a transaction otherwise.
			if min := len(batch) / bound; txs < min {
				t.Fatalf("indexed batch took %d transactions, want at least %d", txs, min)
			}
			st, err := s.Stats(ctx)
			if err != nil || st.Objects != 3_000 || st.LastSeq != 3_000 {
				t.Fatalf("stats %+v, %v", st, err)
			}
			for _, ix := range []Index{IndexLastModified, IndexName, IndexSize} {
				n := 0
				var prev *Entry
				err := s.View(ctx, func(sn *Snapshot) error {
					return sn.Walk(ctx, ix, false, 0, func(e Entry) error {
						if prev != nil && less(ix, &e, prev) {
							return fmt.Errorf("index %d: %s after %s", ix, e.Key, prev.Key)
						}
						n++
						prev = &e
						return nil
					})
				})
				if err != nil || n != 3_000 {
					t.Fatalf("index %d: %d entries, %v", ix, n, err)
				}
			}
		})
	}
}

// less is the order of index ix: its value, then the key.
func less(ix Index, a, b *Entry) bool {
	c := 0
	switch ix {
	case IndexLastModified:
		c = a.LastModified.Compare(b.LastModified)
	case IndexSize:
		c = cmp.Compare(a.Size, b.Size)
	case IndexName:
		c = strings.Compare(path.Base(a.Key), path.Base(b.Key))
	}
	if c == 0 {
		c = strings.Compare(a.Key, b.Key)
	}
	return c < 0
}
