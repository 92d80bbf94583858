package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

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

// The blocks stay well formed through inserts all over the key range,
// updates and deletes: each under its first record's sort key, records in
// order, none empty, none far above blockMax, one field record per text
// record, and together exactly the objects with their sizes and mtimes.
func TestSearchBlocksShape(t *testing.T) {
	ctx := context.Background()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	commitN := func(from, to, step int, del bool, v int) {
		var m []Mutation
		for i := from; i < to; i += step {
			o := providers.Object{Key: fmt.Sprintf("Dir%02d/file-%06d.png", i%37, i), ETag: fmt.Sprint(v), Size: int64(i * v)}
			if i%7 != 0 { // some without mtime
				o.LastModified = time.Unix(int64(i*v), int64(v)).UTC()
			}
			m = append(m, Mutation{Object: o, Delete: del, Origin: Scan})
		}
		if _, err := s.Commit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		commitN(i, 20000, 5, false, 1)
	}
	commitN(0, 20000, 3, true, 1)
	commitN(1, 20000, 4, false, 3) // updates, and re-adds of deleted keys
	var blocks, records int
	err = c.bolt().View(func(tx *bolt.Tx) error {
		src := tx.Bucket(rootBucket).Bucket([]byte("s"))
		objs := src.Bucket(objectBucket)
		var prev []byte
		err := src.Bucket(searchBucket).ForEach(func(k, v []byte) error {
			blocks++
			text, fields, err := splitBlock(v)
			if err != nil {
				return err
			}
			if len(text) == 0 || len(text) > blockMax+512 {
				return fmt.Errorf("block %q holds %d bytes of text", k, len(text))
			}
			for first := true; len(text) > 0; first = false {
				r, n, err := parseRecord(text)
				if err != nil {
					return err
				}
				if first && !bytes.Equal(r.sk, k) {
					return fmt.Errorf("block %q starts with %q", k, r.sk)
				}
				if bytes.Compare(r.sk, prev) <= 0 {
					return fmt.Errorf("record %q after %q", r.sk, prev)
				}
				if err := checkFields(objs, r.sk, fields); err != nil {
					return err
				}
				prev = append(prev[:0], r.sk...)
				records++
				text, fields = text[n:], fields[fieldSize:]
			}
			if len(fields) != 0 {
				return fmt.Errorf("block %q: %d bytes of fields left over", k, len(fields))
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

// checkFields compares the fields at the start of f with the object of sk.
func checkFields(objs *bolt.Bucket, sk, f []byte) error {
	v := objs.Get(sk)
	if v == nil {
		return fmt.Errorf("record %q without object", sk)
	}
	if len(f) < fieldSize {
		return fmt.Errorf("record %q without fields", sk)
	}
	e, err := decodeEntry(string(sk), v)
	if err != nil {
		return err
	}
	mt, size := int64(binary.BigEndian.Uint64(f)), int64(binary.BigEndian.Uint64(f[8:]))
	if mt != mtimeNanos(&e.Object) || size != e.Size {
		return fmt.Errorf("record %q: mtime %d size %d, object has %d and %d", sk, mt, size, mtimeNanos(&e.Object), e.Size)
	}
	return nil
}

// A catalog whose blocks are of the first layout drops them at its next
// commit and builds the current ones; until then its searches take the pass.
func TestSearchBlocksV1Dropped(t *testing.T) {
	ctx := context.Background()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	put := func(key string) {
		if _, err := s.Commit(ctx, []Mutation{{Object: providers.Object{Key: key, ETag: "x", Size: 1}, Origin: Scan}}); err != nil {
			t.Fatal(err)
		}
	}
	put("a/needle-1")
	err = c.bolt().Update(func(tx *bolt.Tx) error {
		src := tx.Bucket(rootBucket).Bucket([]byte("s"))
		if err := src.DeleteBucket(searchBucket); err != nil {
			return err
		}
		b, err := src.CreateBucket(searchV1)
		if err != nil {
			return err
		}
		return b.Put([]byte("a/needle-1"), []byte("a/needle-1\xfe\xff"))
	})
	if err != nil {
		t.Fatal(err)
	}
	search := func() (keys []string) {
		err := s.View(ctx, func(sn *Snapshot) error {
			return sn.SearchHits(ctx, "needle", nil, func(h *Hit) error {
				keys = append(keys, string(h.Key))
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if got := search(); len(got) != 1 {
		t.Fatalf("before the commit: %q", got)
	}
	put("b/needle-2")
	if got := search(); len(got) != 2 {
		t.Fatalf("after the commit: %q", got)
	}
	err = c.bolt().View(func(tx *bolt.Tx) error {
		src := tx.Bucket(rootBucket).Bucket([]byte("s"))
		if src.Bucket(searchV1) != nil || src.Bucket(searchBucket) == nil {
			return fmt.Errorf("first-layout blocks kept, or current ones missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// indexFrom finds what bytes.Index finds, through any anchor byte.
func TestIndexFrom(t *testing.T) {
	s := []byte("aab needle nee needl eneedle xneedle\xff\xfeneedle")
	for _, q := range []string{"needle", "e", "ee", "a", "aab", "le", "x", "zz", "needle\xff", "eneedle"} {
		for j := range len(q) {
			for off := 0; off <= len(s); off++ {
				want := bytes.Index(s[off:], []byte(q))
				if want >= 0 {
					want += off
				}
				if got := indexFrom(s, off, []byte(q), j); got != want {
					t.Fatalf("indexFrom(%d, %q, %d) = %d, want %d", off, q, j, got, want)
				}
			}
		}
	}
	if j := rarestByte([]byte("dir007/img-0000123.png\xfe\xffdir007/needle-0000100.png\xfe\xff"), []byte("needle")); j != 4 {
		t.Errorf("rarest byte of needle: %d, want 4 (the l)", j)
	}
}
