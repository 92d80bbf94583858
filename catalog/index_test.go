package catalog

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// The indexes follow every add, modification and delete, and a catalog
// without them (written by an older syncer) gets them at its next commit.
func TestIndexesFollowCommits(t *testing.T) {
	ctx := context.Background()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	obj := func(k string, size int64, at int) providers.Object {
		return providers.Object{Key: k, Size: size, ETag: fmt.Sprint(size), LastModified: t0.Add(time.Duration(at) * time.Second)}
	}
	put := func(objs ...providers.Object) {
		var m []Mutation
		for _, o := range objs {
			m = append(m, Mutation{Object: o, Origin: Scan})
		}
		if _, err := s.Commit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	put(obj("b/z.png", 5, 3), obj("a/y.png", 1, 1), obj("c/x.png", 9, 2), obj("a b", 9, 2))
	put(obj("a/y.png", 7, 9)) // modified: new size and time
	if _, err := s.Commit(ctx, []Mutation{{Object: providers.Object{Key: "b/z.png"}, Delete: true, Origin: Scan}}); err != nil {
		t.Fatal(err)
	}
	check := func(label string) {
		t.Helper()
		var all []Entry
		s.Range(ctx, "", func(e Entry) error { all = append(all, e); return nil }) //nolint:errcheck
		for _, ix := range []Index{IndexKey, IndexLastModified, IndexName, IndexSize} {
			for _, desc := range []bool{false, true} {
				want := append([]Entry(nil), all...)
				sort.Slice(want, func(i, j int) bool {
					a, b := want[i], want[j]
					c := 0
					switch ix {
					case IndexLastModified:
						c = a.LastModified.Compare(b.LastModified)
					case IndexSize:
						c = int(a.Size - b.Size)
					case IndexName:
						c = strings.Compare(path.Base(a.Key), path.Base(b.Key))
					}
					if c == 0 {
						c = strings.Compare(a.Key, b.Key)
					}
					return c < 0 != desc && c != 0
				})
				var got []string
				err := s.View(ctx, func(sn *Snapshot) error {
					if !sn.Indexed() {
						t.Fatalf("%s: not indexed", label)
					}
					return sn.Walk(ctx, ix, desc, 0, func(e Entry) error { got = append(got, e.Key); return nil })
				})
				if err != nil {
					t.Fatal(err)
				}
				var w []string
				for _, e := range want {
					w = append(w, e.Key)
				}
				if strings.Join(got, ",") != strings.Join(w, ",") {
					t.Errorf("%s: index %d desc %v: %v, want %v", label, ix, desc, got, w)
				}
			}
		}
	}
	check("maintained")
	// Drop the indexes, as a catalog from before them; the next commit
	// rebuilds them.
	if err := c.bolt().Update(func(tx *bolt.Tx) error {
		src := tx.Bucket(rootBucket).Bucket([]byte("s"))
		for _, n := range [][]byte{ixMtime, ixSize, ixName} {
			if err := src.DeleteBucket(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.View(ctx, func(sn *Snapshot) error { //nolint:errcheck
		if sn.Indexed() {
			t.Fatal("still indexed")
		}
		return nil
	})
	put(obj("d/new.png", 3, 5))
	check("rebuilt")

	// A commit through a source without indexes drops them, so no reader
	// ever walks a stale one; turning them on again rebuilds them.
	plain := c.Source("s", providers.ByteOrder)
	if _, err := plain.Commit(ctx, []Mutation{upsert(obj("e/late.jpg", 9, 9))}); err != nil {
		t.Fatal(err)
	}
	s.View(ctx, func(sn *Snapshot) error { //nolint:errcheck
		if sn.Indexed() {
			t.Fatal("indexes kept by a commit that did not maintain them")
		}
		return nil
	})
	put(obj("e/later.jpg", 4, 4))
	check("rebuilt after a commit without them")
}
