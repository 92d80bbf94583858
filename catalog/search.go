package catalog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// Search blocks of an indexed source, for the asset API's text query: the
// bucket "search2" holds packed blocks, each the records of a contiguous
// range of sort keys, keyed by its first sort key:
//
//	block:  uvarint(len(text)) | text | fields
//	text:   one record per object: Fold(key) 0xFE [sort key] 0xFF
//	        (sort key omitted when equal to Fold(key))
//	fields: per record, in the same order: mtime | size, 8 bytes each,
//	        big-endian (mtime in unix ns as the entry holds it, 0 = unknown)
//
// A query walks a few thousand values and runs bytes.Index over contiguous
// memory instead of a cursor step and a fold per object. 0xFE and 0xFF
// occur neither in folded UTF-8 nor in a sort key (UTF-16 sort keys use
// 0xF5/0xF6 at most), so a hit never spans two records. The fields are
// what the asset API's sort orders and `total` need: a query learns them
// from the blocks, and only its page's entries are read from the objects.
// They sit apart from the text so that bytes.Index scans only text, and
// have a fixed width so that a record's number finds them. The blocks live
// in the commit's transaction like the other indexes (an update that
// changes size or mtime rewrites its record), are built at the first
// indexed commit and dropped when indexing is off, so they are never stale.
var searchBucket = []byte("search2")

// searchV1 is the bucket of the first block layout (text only): dropped
// at the next commit, and never read.
var searchV1 = []byte("search")

const (
	recText = 0xFE // ends a record's folded text
	recEnd  = 0xFF // ends a record
	// fieldSize is the width of a record's fields.
	fieldSize = 16
	// A block whose text passes blockMax bytes is cut into blocks of about
	// blockFill: big enough that a query's cursor steps are few, small
	// enough that a commit's insert rewrites little.
	blockMax  = 8 << 10
	blockFill = 6 << 10
)

var errCorruptBlock = errors.New("catalog: corrupt search block")

// searchOp is one pending add or update (key set) or delete of a sort key.
type searchOp struct {
	sk          []byte
	key         string // "" for a delete
	mtime, size int64
}

// searchBlocks is a commit's pending changes to the search blocks: a commit
// groups them per block and rewrites each touched block once (flush).
type searchBlocks struct {
	b   *bolt.Bucket
	ops []searchOp
}

// dropSearch removes the blocks of a source that keeps no indexes, and
// those of the first layout in any case.
func dropSearch(src *bolt.Bucket, all bool) error {
	names := [][]byte{searchV1}
	if all {
		names = append(names, searchBucket)
	}
	for _, n := range names {
		if src.Bucket(n) != nil {
			if err := src.DeleteBucket(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// mtimeNanos is the mtime as entries store it: unix ns, 0 when unknown.
func mtimeNanos(o *providers.Object) int64 {
	if o.LastModified.IsZero() {
		return 0
	}
	return o.LastModified.UnixNano()
}

// openSearch returns the source's search blocks, building them from the
// objects in one ordered pass when they are missing.
func openSearch(src, objs *bolt.Bucket, order providers.Order) (*searchBlocks, error) {
	if err := dropSearch(src, false); err != nil {
		return nil, err
	}
	if b := src.Bucket(searchBucket); b != nil {
		b.FillPercent = 0.9
		return &searchBlocks{b: b}, nil
	}
	b, err := src.CreateBucket(searchBucket)
	if err != nil {
		return nil, err
	}
	b.FillPercent = 0.9
	s := &searchBlocks{b: b}
	var out blockBuf
	c := objs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e, err := decodeEntry(order.FromSortKey(string(k)), v)
		if err != nil {
			return nil, err
		}
		out.add(k, e.Key, mtimeNanos(&e.Object), e.Size)
		if len(out.text) >= blockFill {
			if err := s.store(out); err != nil {
				return nil, err
			}
			out = blockBuf{}
		}
	}
	return s, s.store(out)
}

// blockBuf is the text and fields of records on their way into blocks.
type blockBuf struct{ text, fields []byte }

func (b *blockBuf) add(sk []byte, key string, mtime, size int64) {
	f := Fold(key)
	b.text = append(b.text, f...)
	b.text = append(b.text, recText)
	if f != string(sk) {
		b.text = append(b.text, sk...)
	}
	b.text = append(b.text, recEnd)
	b.fields = binary.BigEndian.AppendUint64(b.fields, uint64(mtime))
	b.fields = binary.BigEndian.AppendUint64(b.fields, uint64(size))
}

// splitBlock parses a block's header: its text and its fields.
func splitBlock(v []byte) (text, fields []byte, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || n > uint64(len(v)-w) || (uint64(len(v)-w)-n)%fieldSize != 0 {
		return nil, nil, errCorruptBlock
	}
	return v[w : w+int(n)], v[w+int(n):], nil
}

// record is one record of a block's text: its bytes (with the end mark)
// and its sort key, both views of the block.
type record struct{ raw, sk []byte }

// parseRecord splits the record starting at v[0]; n is its length.
func parseRecord(v []byte) (r record, n int, err error) {
	t := bytes.IndexByte(v, recText)
	e := bytes.IndexByte(v, recEnd)
	if t < 0 || e < t {
		return r, 0, errCorruptBlock
	}
	r.raw, r.sk = v[:e+1], v[t+1:e]
	if len(r.sk) == 0 {
		r.sk = v[:t]
	}
	return r, e + 1, nil
}

// put notes an add of sk, or an update of its fields.
func (s *searchBlocks) put(sk []byte, o *providers.Object) {
	if s != nil {
		s.ops = append(s.ops, searchOp{sk: sk, key: o.Key, mtime: mtimeNanos(o), size: o.Size})
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
	var text, fields []byte
	if key != nil {
		var err error
		if text, fields, err = splitBlock(blk); err != nil {
			return err
		}
	}
	out := blockBuf{text: make([]byte, 0, len(text)+len(ops)*64), fields: make([]byte, 0, len(fields)+len(ops)*fieldSize)}
	for len(text) > 0 || len(ops) > 0 {
		var r record
		var n int
		if len(text) > 0 {
			var err error
			if r, n, err = parseRecord(text); err != nil || len(fields) < fieldSize {
				return errCorruptBlock
			}
		}
		c := 1 // which comes first: -1 the record, 1 the op, 0 both
		if len(ops) == 0 {
			c = -1
		} else if len(text) > 0 {
			c = bytes.Compare(r.sk, ops[0].sk)
		}
		if c < 0 {
			out.text = append(out.text, r.raw...)
			out.fields = append(out.fields, fields[:fieldSize]...)
		}
		if c <= 0 {
			text, fields = text[n:], fields[fieldSize:]
		}
		if c >= 0 {
			if op := ops[0]; op.key != "" {
				out.add(op.sk, op.key, op.mtime, op.size)
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

// store puts the records of out as blocks, cut at record ends once a
// block's text passes blockFill when out's exceeds blockMax.
func (s *searchBlocks) store(out blockBuf) error {
	for len(out.text) > 0 {
		cut := len(out.text)
		if cut > blockMax {
			cut = blockFill + bytes.IndexByte(out.text[blockFill:], recEnd) + 1
		}
		r, _, err := parseRecord(out.text)
		if err != nil {
			return err
		}
		nf := bytes.Count(out.text[:cut], []byte{recEnd}) * fieldSize
		if nf > len(out.fields) {
			return errCorruptBlock
		}
		// A fresh value per block: bbolt keeps it until the commit.
		v := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen32+cut+nf), uint64(cut))
		v = append(append(v, out.text[:cut]...), out.fields[:nf]...)
		if err := s.b.Put(bytes.Clone(r.sk), v); err != nil {
			return err
		}
		out.text, out.fields = out.text[cut:], out.fields[nf:]
	}
	return nil
}
