package catalog

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// Fold gives every member of a folding orbit one form, the ASCII fast
// path's where the orbit holds an ASCII letter.
func TestFoldOrbits(t *testing.T) {
	for _, c := range [][]string{{"K", "k", "\u212A"}, {"S", "s", "ſ"}, {"Σ", "σ", "ς"}, {"𐐀", "𐐨"}, {"Å", "å", "\u212B"}} {
		for _, s := range c {
			if Fold(s) != Fold(c[0]) {
				t.Errorf("Fold(%q) = %q, Fold(%q) = %q", s, Fold(s), c[0], Fold(c[0]))
			}
		}
	}
	if Fold("\u212A") != "k" || !ContainsFold("x\u212Ay", "k") || !ContainsFold("XKY", Fold("x\u212Ay")) {
		t.Error("the Kelvin sign does not fold to the ASCII path's k")
	}
}

// The blocks stay well formed through inserts all over the key range and
// deletes: each under its first record's sort key, records in order, none
// empty, none far above blockMax, and together exactly the objects.
func TestSearchBlocksShape(t *testing.T) {
	ctx := context.Background()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	commitN := func(from, to, step int, del bool) {
		var m []Mutation
		for i := from; i < to; i += step {
			m = append(m, Mutation{Object: providers.Object{Key: fmt.Sprintf("Dir%02d/file-%06d.png", i%37, i), ETag: "x"}, Delete: del, Origin: Scan})
		}
		if _, err := s.Commit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		commitN(i, 20000, 5, false)
	}
	commitN(0, 20000, 3, true)
	var blocks, records int
	err = c.bolt().View(func(tx *bolt.Tx) error {
		src := tx.Bucket(rootBucket).Bucket([]byte("s"))
		objs := src.Bucket(objectBucket)
		var prev []byte
		err := src.Bucket(searchBucket).ForEach(func(k, v []byte) error {
			blocks++
			if len(v) == 0 || len(v) > blockMax+512 {
				return fmt.Errorf("block %q holds %d bytes", k, len(v))
			}
			for first := true; len(v) > 0; first = false {
				r, n, err := parseRecord(v)
				if err != nil {
					return err
				}
				if first && !bytes.Equal(r.sk, k) {
					return fmt.Errorf("block %q starts with %q", k, r.sk)
				}
				if bytes.Compare(r.sk, prev) <= 0 {
					return fmt.Errorf("record %q after %q", r.sk, prev)
				}
				if objs.Get(r.sk) == nil {
					return fmt.Errorf("record %q without object", r.sk)
				}
				prev = append(prev[:0], r.sk...)
				records++
				v = v[n:]
			}
			return nil
		})
		if err == nil && records != objs.Stats().KeyN {
			err = fmt.Errorf("%d records for %d objects", records, objs.Stats().KeyN)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if blocks < 20 {
		t.Errorf("%d records in only %d blocks: blocks are not split", records, blocks)
	}
}
