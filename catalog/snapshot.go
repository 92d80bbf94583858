package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// boltSnapshot reads one source inside one bbolt read transaction.
type boltSnapshot struct {
	src  *boltSource
	objs *bolt.Bucket    // nil: the source has no objects yet
	ix   [3]*bolt.Bucket // mtime, size, name; nil before the first indexed commit
	// search holds the search blocks (search.go); nil likewise.
	search *bolt.Bucket
}

// View calls fn with a snapshot of the source. bbolt would deadlock on a
// read transaction held while the same goroutine waits for the writer, so
// fn must not write to the catalog.
func (s *boltSource) View(ctx context.Context, fn func(*Snapshot) error) error {
	err := s.c.db.View(func(tx *bolt.Tx) error {
		snap := &boltSnapshot{src: s}
		var seq, count uint64
		if src := s.bucket(tx); src != nil {
			seq = getU64(src, keySeq)
			count = getU64(src, keyCount)
			snap.objs = src.Bucket(objectBucket)
			if indexState(src) == 0 { // a deferred or running build is not read
				snap.ix = [3]*bolt.Bucket{src.Bucket(ixMtime), src.Bucket(ixSize), src.Bucket(ixName)}
			}
			snap.search = src.Bucket(searchBucket)
		}
		return fn(NewSnapshot(seq, count, snap))
	})
	if err != nil {
		return fmt.Errorf("catalog: view %s: %w", s.id, err)
	}
	return nil
}

// Get returns the entry of key, and whether it exists.
func (sn *boltSnapshot) Get(key string) (Entry, bool, error) {
	if sn.objs == nil {
		return Entry{}, false, nil
	}
	v := sn.objs.Get([]byte(sn.src.order.SortKey(key)))
	if v == nil {
		return Entry{}, false, nil
	}
	e, err := decodeEntry(key, v)
	if err != nil {
		return Entry{}, false, fmt.Errorf("key %q: %w", key, err)
	}
	return e, true, nil
}

// Range calls fn for each entry whose key starts with prefix, in the
// source's key order, until fn returns an error; ErrStop ends it cleanly.
// The entry passed to fn is decoded afresh for each call and may be kept.
func (sn *boltSnapshot) Range(ctx context.Context, prefix string, fn func(Entry) error) error {
	if sn.objs == nil {
		return nil
	}
	sp := []byte(sn.src.order.SortKey(prefix))
	cur := sn.objs.Cursor()
	n := 0
	for k, v := cur.Seek(sp); k != nil && bytes.HasPrefix(k, sp); k, v = cur.Next() {
		// Cancellation is checked now and then: a query over a million
		// entries must stop when its client goes away.
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		e, err := decodeEntry(sn.src.order.FromSortKey(string(k)), v)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		if err := fn(e); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// RangeAfter: see Snapshot.RangeAfter.
func (sn *boltSnapshot) RangeAfter(ctx context.Context, key string, match func(key []byte) bool, fn func(Entry) error) error {
	if sn.objs == nil {
		return nil
	}
	cur := sn.objs.Cursor()
	var k, v []byte
	if key == "" {
		k, v = cur.First()
	} else {
		sk := []byte(sn.src.order.SortKey(key))
		if k, v = cur.Seek(sk); k != nil && bytes.Equal(k, sk) {
			k, v = cur.Next()
		}
	}
	return sn.walkFrom(ctx, cur, k, v, match, fn)
}

// RangeMatch is Range for a filter on keys: match sees each key (as bytes,
// valid only during the call) and only the entries it accepts are decoded
// and passed to fn. A filtered query over a million entries then costs a
// cursor walk, not a million decodes.
func (sn *boltSnapshot) RangeMatch(ctx context.Context, match func(key []byte) bool, fn func(Entry) error) error {
	if sn.objs == nil {
		return nil
	}
	cur := sn.objs.Cursor()
	k, v := cur.First()
	return sn.walkFrom(ctx, cur, k, v, match, fn)
}

// walkFrom goes on from cur's position (k, v) to the end; match (nil: all)
// sees each key as bytes valid only during the call.
func (sn *boltSnapshot) walkFrom(ctx context.Context, cur *bolt.Cursor, k, v []byte, match func(key []byte) bool, fn func(Entry) error) error {
	utf16 := sn.src.order == providers.UTF16Order
	n := 0
	var buf []byte
	for ; k != nil; k, v = cur.Next() {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		key := k
		if utf16 {
			buf = append(buf[:0], sn.src.order.FromSortKey(string(k))...)
			key = buf
		}
		if match != nil && !match(key) {
			continue
		}
		e, err := decodeEntry(string(key), v)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		if err := fn(e); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}
