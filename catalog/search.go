package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// Search blocks of an indexed source, for the asset API's text query: the
// bucket "search" holds packed blocks, each the records of a contiguous
// range of sort keys, keyed by its first sort key:
//
//	record: Fold(key) 0xFE [sort key] 0xFF   (sort key omitted when equal to Fold(key))
//
// A query walks a few thousand values and runs bytes.Index over contiguous
// memory instead of a cursor step and a fold per object. 0xFE and 0xFF
// occur neither in folded UTF-8 nor in a sort key (UTF-16 sort keys use
// 0xF5/0xF6 at most), so a hit never spans two records. The blocks live in
// the commit's transaction like the other indexes, are built at the first
// indexed commit and dropped when indexing is off, so they are never stale.
var searchBucket = []byte("search")

const (
	recText = 0xFE // ends a record's folded text
	recEnd  = 0xFF // ends a record
	// A block above blockMax bytes is cut into blocks of about blockFill:
	// big enough that a query's cursor steps are few, small enough that a
	// commit's insert rewrites little.
	blockMax  = 8 << 10
	blockFill = 6 << 10
)

// searchOp is one pending add (key set) or delete of a sort key.
type searchOp struct {
	sk  []byte
	key string // "" for a delete
}

// searchBlocks is a commit's pending changes to the search blocks: a commit
// groups them per block and rewrites each touched block once (flush).
type searchBlocks struct {
	b   *bolt.Bucket
	ops []searchOp
}

// dropSearch removes the blocks of a source that keeps no indexes.
func dropSearch(src *bolt.Bucket) error {
	if src.Bucket(searchBucket) == nil {
		return nil
	}
	return src.DeleteBucket(searchBucket)
}

// openSearch returns the source's search blocks, building them from the
// objects in one ordered pass when they are missing.
func openSearch(src, objs *bolt.Bucket, order providers.Order) (*searchBlocks, error) {
	if b := src.Bucket(searchBucket); b != nil {
		b.FillPercent = 0.9
		return &searchBlocks{b: b}, nil
	}
	b, err := src.CreateBucket(searchBucket)
	if err != nil {
		return nil, err
	}
	b.FillPercent = 0.9
	var blk []byte
	var first []byte
	c := objs.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if first == nil {
			first = append([]byte(nil), k...)
		}
		blk = appendRecord(blk, k, order.FromSortKey(string(k)))
		if len(blk) >= blockFill {
			if err := b.Put(first, blk); err != nil {
				return nil, err
			}
			blk, first = nil, nil
		}
	}
	if first != nil {
		if err := b.Put(first, blk); err != nil {
			return nil, err
		}
	}
	return &searchBlocks{b: b}, nil
}

func appendRecord(dst, sk []byte, key string) []byte {
	f := Fold(key)
	dst = append(dst, f...)
	dst = append(dst, recText)
	if f != string(sk) {
		dst = append(dst, sk...)
	}
	return append(dst, recEnd)
}

// record is one record of a block: its bytes (with the end mark) and its
// sort key, both views of the block.
type record struct{ raw, sk []byte }

// parseRecord splits the record starting at v[0]; n is its length.
func parseRecord(v []byte) (r record, n int, err error) {
	t := bytes.IndexByte(v, recText)
	e := bytes.IndexByte(v, recEnd)
	if t < 0 || e < t {
		return r, 0, errors.New("catalog: corrupt search block")
	}
	r.raw, r.sk = v[:e+1], v[t+1:e]
	if len(r.sk) == 0 {
		r.sk = v[:t]
	}
	return r, e + 1, nil
}

func (s *searchBlocks) add(sk []byte, key string) {
	if s != nil {
		s.ops = append(s.ops, searchOp{sk: sk, key: key})
	}
}

func (s *searchBlocks) remove(sk []byte) {
	if s != nil {
		s.ops = append(s.ops, searchOp{sk: sk})
	}
}

// flush applies the pending ops: sorted by sort key (the last op of a key
// wins), each run of ops falling into one block rewrites that block once.
func (s *searchBlocks) flush() error {
	if s == nil || len(s.ops) == 0 {
		return nil
	}
	ops := s.ops
	s.ops = nil
	sort.SliceStable(ops, func(i, j int) bool { return bytes.Compare(ops[i].sk, ops[j].sk) < 0 })
	last := ops[:0]
	for i := range ops {
		if i+1 < len(ops) && bytes.Equal(ops[i].sk, ops[i+1].sk) {
			continue
		}
		last = append(last, ops[i])
	}
	ops = last
	for len(ops) > 0 {
		key, blk, next := s.blockOf(ops[0].sk)
		n := len(ops)
		if next != nil {
			n = sort.Search(len(ops), func(i int) bool { return bytes.Compare(ops[i].sk, next) >= 0 })
		}
		if err := s.rewrite(key, blk, ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// blockOf finds the block sk falls into — the last whose first key is at
// most sk, else the first — and the first key of the block after it (nil:
// none). Both come back copied: the caller writes to the bucket next.
func (s *searchBlocks) blockOf(sk []byte) (key, blk, next []byte) {
	c := s.b.Cursor()
	k, v := c.Seek(sk)
	switch {
	case k == nil:
		k, v = c.Last()
	case !bytes.Equal(k, sk):
		if k, v = c.Prev(); k == nil {
			k, v = c.First()
		}
	}
	if k == nil {
		return nil, nil, nil
	}
	key, blk = bytes.Clone(k), bytes.Clone(v)
	if nk, _ := c.Next(); nk != nil {
		next = bytes.Clone(nk)
	}
	return key, blk, next
}

// rewrite merges sorted ops into the block stored under key (nil: none
// yet) and stores the result, cut into blocks when it grew too big, each
// under its first sort key; an emptied block is dropped.
func (s *searchBlocks) rewrite(key, blk []byte, ops []searchOp) error {
	out := make([]byte, 0, len(blk)+len(ops)*64)
	for len(blk) > 0 || len(ops) > 0 {
		var r record
		var n int
		if len(blk) > 0 {
			var err error
			if r, n, err = parseRecord(blk); err != nil {
				return err
			}
		}
		c := 1 // which comes first: -1 the record, 1 the op, 0 both
		if len(ops) == 0 {
			c = -1
		} else if len(blk) > 0 {
			c = bytes.Compare(r.sk, ops[0].sk)
		}
		if c <= 0 {
			blk = blk[n:]
		}
		switch {
		case c < 0:
			out = append(out, r.raw...)
		default:
			if ops[0].key != "" {
				out = appendRecord(out, ops[0].sk, ops[0].key)
			}
			ops = ops[1:]
		}
	}
	if key != nil {
		if err := s.b.Delete(key); err != nil {
			return err
		}
	}
	return s.store(out)
}

// store puts the records of out as blocks, cut at record ends once a block
// passes blockFill when out exceeds blockMax.
func (s *searchBlocks) store(out []byte) error {
	for len(out) > 0 {
		cut := len(out)
		if len(out) > blockMax {
			cut = blockFill + bytes.IndexByte(out[blockFill:], recEnd) + 1
		}
		r, _, err := parseRecord(out)
		if err != nil {
			return err
		}
		// out is not reused, so bbolt may keep both slices until the commit.
		if err := s.b.Put(r.sk, out[:cut:cut]); err != nil {
			return err
		}
		out = out[cut:]
	}
	return nil
}

// Search: see Snapshot.Search. Without blocks (a source not indexed, or
// not committed since) it reports handled false and the caller does a pass.
func (sn *boltSnapshot) Search(ctx context.Context, text string, match func(key []byte) bool, fn func(Entry) error) (bool, error) {
	t := []byte(text)
	// A text holding a separator is not folded UTF-8: the pass handles it.
	if sn.search == nil || sn.objs == nil || len(t) == 0 || bytes.IndexByte(t, recText) >= 0 || bytes.IndexByte(t, recEnd) >= 0 {
		return false, nil
	}
	c := sn.search.Cursor()
	n := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n++; n%256 == 0 && ctx.Err() != nil {
			return true, ctx.Err()
		}
		for off := 0; off < len(v); {
			i := bytes.Index(v[off:], t)
			if i < 0 {
				break
			}
			i += off
			rs := bytes.LastIndexByte(v[:i], recEnd) + 1
			r, rn, err := parseRecord(v[rs:])
			if err != nil {
				return true, fmt.Errorf("block %q: %w", k, err)
			}
			off = rs + rn
			if i >= rs+bytes.IndexByte(r.raw, recText) {
				continue // the hit is in the sort key, not the text
			}
			if err := sn.searchHit(r.sk, match, fn); err != nil {
				if errors.Is(err, ErrStop) {
					return true, nil
				}
				return true, err
			}
		}
	}
	return true, nil
}

// searchHit passes the entry of a record whose text holds the query to fn,
// when match accepts its key.
func (sn *boltSnapshot) searchHit(sk []byte, match func(key []byte) bool, fn func(Entry) error) error {
	key := sk // byte order: the sort key is the key
	if sn.src.order != providers.ByteOrder {
		key = []byte(sn.src.order.FromSortKey(string(sk)))
	}
	if match != nil && !match(key) {
		return nil
	}
	v := sn.objs.Get(sk)
	if v == nil {
		return fmt.Errorf("catalog: search record %q without object", sk)
	}
	e, err := decodeEntry(string(key), v)
	if err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	return fn(e)
}
