package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// Secondary indexes of a source, for the asset API's sort orders: each is a
// bucket of keys "<order value><sort key>" with empty values, kept in the
// same transaction as the object they describe, so the catalog stays the
// single truth and nothing needs rebuilding after a crash. The sort key at
// the end breaks ties in the provider's key order.
//
//	ix-mtime: mtime (8 bytes, sign-flipped unix ns; 0 = unknown) | sort key
//	ix-size:  size (8 bytes, sign-flipped) | sort key
//	ix-name:  file name | 0x00 | sort key
var (
	ixMtime = []byte("ix-mtime")
	ixSize  = []byte("ix-size")
	ixName  = []byte("ix-name")
)

// Index names a sort order with an index.
type Index int

const (
	IndexKey Index = iota // the objects bucket itself
	IndexLastModified
	IndexName
	IndexSize
)

func orderedInt(v int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(v)^(1<<63))
}

func mtimeValue(o *providers.Object) []byte {
	if o.LastModified.IsZero() {
		return make([]byte, 8)
	}
	return orderedInt(o.LastModified.UnixNano())
}

// indexes are a source's index buckets within one write transaction.
type indexes struct{ mtime, size, name *bolt.Bucket }

// dropIndexes removes a source's index buckets: a source that keeps no
// indexes must not leave stale ones behind for a later reader, and one that
// turns them on again rebuilds them from the objects (openIndexes).
func dropIndexes(src *bolt.Bucket) error {
	for _, n := range [][]byte{ixMtime, ixSize, ixName, ixDirty} {
		if src.Bucket(n) != nil {
			if err := src.DeleteBucket(n); err != nil {
				return err
			}
		}
	}
	if src.Get(keyIxState) != nil {
		return src.Delete(keyIxState)
	}
	return nil
}

// openIndexes returns the source's indexes, creating them — and filling
// them from the objects, for a catalog written before they existed — when
// they are missing.
func openIndexes(src, objs *bolt.Bucket, order providers.Order) (*indexes, error) {
	ix := &indexes{mtime: src.Bucket(ixMtime), size: src.Bucket(ixSize), name: src.Bucket(ixName)}
	if ix.mtime != nil && ix.size != nil && ix.name != nil {
		return ix, nil
	}
	for _, n := range [][]byte{ixMtime, ixSize, ixName} {
		if src.Bucket(n) != nil {
			if err := src.DeleteBucket(n); err != nil {
				return nil, err
			}
		}
	}
	var err error
	if ix.mtime, err = src.CreateBucket(ixMtime); err != nil {
		return nil, err
	}
	if ix.size, err = src.CreateBucket(ixSize); err != nil {
		return nil, err
	}
	if ix.name, err = src.CreateBucket(ixName); err != nil {
		return nil, err
	}
	c := objs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e, err := decodeEntry(order.FromSortKey(string(k)), v)
		if err != nil {
			return nil, fmt.Errorf("index key %q: %w", k, err)
		}
		if err := ix.add(k, &e.Object); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

func ixKeys(sk []byte, o *providers.Object) (mtime, size, name []byte) {
	mtime = append(mtimeValue(o), sk...)
	size = append(orderedInt(o.Size), sk...)
	name = append(append([]byte(path.Base(o.Key)), 0), sk...)
	return
}

func (ix *indexes) add(sk []byte, o *providers.Object) error {
	if ix == nil { // the source keeps no indexes
		return nil
	}
	m, s, n := ixKeys(sk, o)
	if err := ix.mtime.Put(m, nil); err != nil {
		return err
	}
	if err := ix.size.Put(s, nil); err != nil {
		return err
	}
	return ix.name.Put(n, nil)
}

func (ix *indexes) remove(sk []byte, o *providers.Object) error {
	if ix == nil {
		return nil
	}
	m, s, n := ixKeys(sk, o)
	if err := ix.mtime.Delete(m); err != nil {
		return err
	}
	if err := ix.size.Delete(s); err != nil {
		return err
	}
	return ix.name.Delete(n)
}

// sortKeyOf extracts the sort key from an index key.
func sortKeyOf(ix Index, k []byte) []byte {
	switch ix {
	case IndexLastModified, IndexSize:
		return k[8:]
	case IndexName:
		if i := bytes.IndexByte(k, 0); i >= 0 {
			return k[i+1:]
		}
	}
	return k
}

// Indexed says the snapshot's source has its secondary indexes (a catalog
// written before them gets them with its next commit).
func (sn *boltSnapshot) Indexed() bool { return sn.objs != nil && sn.ix[0] != nil }

// Walk calls fn for the entries in the order of ix (ties by key; desc
// reverses the whole order), after skipping the first skip, until fn
// returns an error; ErrStop ends it cleanly. Skipped entries are not
// decoded, so a page costs its offset in cursor steps plus its size.
func (sn *boltSnapshot) Walk(ctx context.Context, ix Index, desc bool, skip int, fn func(Entry) error) error {
	if sn.objs == nil {
		return nil
	}
	b := sn.objs
	switch ix {
	case IndexLastModified:
		b = sn.ix[0]
	case IndexSize:
		b = sn.ix[1]
	case IndexName:
		b = sn.ix[2]
	}
	if b == nil {
		return errors.New("catalog: source has no index yet")
	}
	c := b.Cursor()
	first, next := c.First, c.Next
	if desc {
		first, next = c.Last, c.Prev
	}
	n := 0
	for k, _ := first(); k != nil; k, _ = next() {
		if n++; n <= skip {
			continue
		}
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		sk := sortKeyOf(ix, k)
		v := sn.objs.Get(sk)
		if v == nil {
			return fmt.Errorf("catalog: index entry %q without object", k)
		}
		e, err := decodeEntry(sn.src.order.FromSortKey(string(sk)), v)
		if err != nil {
			return fmt.Errorf("key %q: %w", sk, err)
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
