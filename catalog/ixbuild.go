package catalog

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// A first import builds the order indexes after its listing instead of in
// every commit. Maintained insert by insert, each key lands at a random
// place in three trees that grow with the source: an indexed first scan
// wrote 14x the bytes of an unindexed one and took 2-2.4x the bare listing
// (docs/benchmarks.md). Built afterwards, the keys of each index are sorted
// once (an external sort over bounded runs) and appended in order into full
// pages, in transactions bounded like a scan's that give way to waiting
// notification commits.
//
// The state lives in the source's bucket under keyIxState:
//
//	absent:   the indexes are maintained by every commit (built in the
//	          first one when missing: a small catalog that turned them on)
//	pending:  commits leave them alone; BuildIndexes will build them
//	building: BuildIndexes runs; commits leave them alone but record, in
//	          ixDirty, each key they change with its index fields before
//	          the change, so that the build can skip it and fix it up last
//
// Readers see a source as indexed only in the first state, so that a query
// never reads a half-built index (it takes the unindexed path instead: the
// same answer, slower). A build interrupted by a crash or a shutdown is
// started again from the beginning by the next BuildIndexes.
var (
	keyIxState = []byte("ix-state")
	ixDirty    = []byte("ix-dirty")
)

const (
	ixPending  = 'p'
	ixBuilding = 'b'
)

// errSuperseded ends a build whose state a commit changed under it: the
// source was opened without indexes meanwhile, which dropped them.
var errSuperseded = errors.New("the source's indexes were turned off during the build")

// Build parameters: the sort's memory budget per run (its records, about
// three per object plus 8 bytes each for their spans), the objects read
// per read transaction, and the index keys an append transaction puts.
// bbolt splits nodes only at the commit, so keys appended in order pile up
// in one node (about 100 bytes each with the key): the count, not the
// nodes, bounds a transaction's memory.
const (
	buildRunBytes = 8 << 20
	buildReadN    = 10_000
	buildTxKeys   = 20_000
	buildFixN     = 5_000
)

// buildKnobs are what tests change of a build: zero values take the
// constants above; step, if set, runs between the build's transactions.
type buildKnobs struct {
	runBytes, readN, txKeys int
	step                    func(phase string) error
}

func (k buildKnobs) stepOf(phase string) error {
	if k.step == nil {
		return nil
	}
	return k.step(phase)
}

// indexState reads the source's index state: 0 when the indexes are
// maintained by commits.
func indexState(src *bolt.Bucket) byte {
	if v := src.Get(keyIxState); len(v) == 1 {
		return v[0]
	}
	return 0
}

// DeferIndexes implements IndexBuilder: a source that has no indexes yet
// leaves them to BuildIndexes.
func (s *boltSource) DeferIndexes(ctx context.Context) error {
	if !s.indexed {
		return nil
	}
	need := true
	if err := s.c.db.View(func(tx *bolt.Tx) error {
		if src := s.bucket(tx); src != nil {
			need = indexState(src) == 0 && src.Bucket(ixMtime) == nil
		}
		return nil
	}); err != nil || !need {
		return err
	}
	err := s.c.db.Update(func(tx *bolt.Tx) error {
		src, err := tx.Bucket(rootBucket).CreateBucketIfNotExists(s.bid)
		if err != nil {
			return err
		}
		if indexState(src) != 0 || src.Bucket(ixMtime) != nil {
			return nil
		}
		return src.Put(keyIxState, []byte{ixPending})
	})
	if err != nil {
		return fmt.Errorf("catalog: defer indexes of %s: %w", s.id, err)
	}
	return nil
}

// BuildIndexes implements IndexBuilder.
func (s *boltSource) BuildIndexes(ctx context.Context) (bool, error) {
	if !s.indexed {
		return false, nil
	}
	mu := s.c.buildLock(s.id)
	mu.Lock()
	defer mu.Unlock()
	var state byte
	if err := s.c.db.View(func(tx *bolt.Tx) error {
		if src := s.bucket(tx); src != nil {
			state = indexState(src)
		}
		return nil
	}); err != nil || state == 0 {
		return false, err
	}
	if err := s.buildIndexes(ctx); err != nil {
		return false, fmt.Errorf("catalog: build indexes of %s: %w", s.id, err)
	}
	return true, nil
}

func (s *boltSource) buildIndexes(ctx context.Context) error {
	// From here on every commit records the keys it changes.
	if err := s.c.db.Update(func(tx *bolt.Tx) error {
		src, _, _, err := s.writable(tx)
		if err != nil {
			return err
		}
		if err := dropIndexes(src); err != nil {
			return err
		}
		for _, n := range [][]byte{ixMtime, ixSize, ixName, ixDirty} {
			if _, err := src.CreateBucket(n); err != nil {
				return err
			}
		}
		return src.Put(keyIxState, []byte{ixBuilding})
	}); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	sorter := &extSort{dir: filepath.Dir(s.c.db.Path()), budget: cmp.Or(s.build.runBytes, buildRunBytes)}
	defer sorter.close()
	if err := s.readIndexKeys(ctx, sorter); err != nil {
		return fmt.Errorf("read objects: %w", err)
	}
	it, err := sorter.sorted(ctx)
	if err != nil {
		return fmt.Errorf("sort: %w", err)
	}
	defer it.stop()
	if err := s.appendIndexKeys(ctx, it); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return s.fixUpIndexes(ctx)
}

// buildUpdate runs fn in a write transaction of a build still under way
// (errSuperseded otherwise), and returns the group's mark taken at its end,
// for the yield to waiting notification commits that follows it.
func (s *boltSource) buildUpdate(fn func(src *bolt.Bucket) error) (mark uint64, err error) {
	err = s.c.db.Update(func(tx *bolt.Tx) error {
		src := s.bucket(tx)
		if src == nil || indexState(src) != ixBuilding {
			return errSuperseded
		}
		if err := fn(src); err != nil {
			return err
		}
		mark = s.c.group.mark()
		return nil
	})
	return mark, err
}

// readIndexKeys feeds the sort every object's index keys, tagged with their
// index, reading the objects in bounded read transactions: a long one
// would block a commit that must grow the file's memory map. A key that
// changes after the build began is read in whatever state it has, and
// skipped by appendIndexKeys: it is in ixDirty by then.
func (s *boltSource) readIndexKeys(ctx context.Context, sorter *extSort) error {
	var after []byte
	readN := cmp.Or(s.build.readN, buildReadN)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := 0
		err := s.c.db.View(func(tx *bolt.Tx) error {
			src := s.bucket(tx)
			if src == nil || indexState(src) != ixBuilding {
				return errSuperseded
			}
			c := src.Bucket(objectBucket).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < readN; k, v = c.Next() {
				n++
				if err := addIndexKeys(sorter, s.order, k, v); err != nil {
					return fmt.Errorf("key %q: %w", k, err)
				}
				after = append(after[:0], k...)
			}
			return nil
		})
		if err != nil || n < readN {
			return err
		}
		if err := s.build.stepOf("read"); err != nil {
			return err
		}
	}
}

// addIndexKeys adds to the sort the index keys of the entry v of sort key
// sk, the same as ixKeys gives, decoding only the fields they need.
func addIndexKeys(sorter *extSort, order providers.Order, sk, v []byte) error {
	r := reader{b: v}
	if r.byte() != codecVersion {
		return errCorrupt
	}
	r.uvarint() // seq
	size, mtime := r.varint(), r.varint()
	if r.err != nil {
		return r.err
	}
	var mt, sz [8]byte
	if mtime != 0 { // 0: unknown, all zero bytes (mtimeValue)
		binary.BigEndian.PutUint64(mt[:], uint64(mtime)^(1<<63))
	}
	binary.BigEndian.PutUint64(sz[:], uint64(size)^(1<<63))
	key := unsafe.String(unsafe.SliceData(sk), len(sk))
	if order != providers.ByteOrder {
		key = order.FromSortKey(key)
	}
	base := path.Base(key)
	if err := sorter.add(0, mt[:], sk); err != nil {
		return err
	}
	if err := sorter.add(1, sz[:], sk); err != nil {
		return err
	}
	return sorter.add(2, unsafe.Slice(unsafe.StringData(base), len(base)), zeroByte, sk)
}

var zeroByte = []byte{0}

// ixBuckets are the order index buckets by sort tag (ixKeys' order).
var ixBuckets = [3][]byte{ixMtime, ixSize, ixName}

// ixOf is the Index of a sort tag.
var ixOf = [3]Index{IndexLastModified, IndexSize, IndexName}

// appendIndexKeys puts the sorted index keys into their buckets, in
// transactions of at most buildTxKeys keys that end early, like a scan's
// (commitScan), when notification commits wait, skipping the keys that
// commits changed since the build began.
func (s *boltSource) appendIndexKeys(ctx context.Context, it *sortedRecs) error {
	rec, err := it.next()
	if err != nil {
		return err
	}
	// Unlike a scan's (commitScan), the hold does not grow with the time
	// the notifications took: the build is background work that nobody
	// waits for, so notifications go first, at the price of a commit per
	// yield.
	const hold = yieldAfter
	for rec != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		mark, err := s.buildUpdate(func(src *bolt.Bucket) error {
			dirty := src.Bucket(ixDirty)
			check := dirty.Cursor()
			anyDirty, _ := check.First()
			var bs [3]*bolt.Bucket
			for i, n := range ixBuckets {
				bs[i] = src.Bucket(n)
				bs[i].FillPercent = 1
			}
			held := time.Now()
			txKeys := cmp.Or(s.build.txKeys, buildTxKeys)
			for n := 0; rec != nil && n < txKeys; n++ {
				if n > 0 && n%yieldEvery == 0 && s.c.group.pending() && time.Since(held) >= hold {
					break
				}
				tag, key := rec[0], rec[1:]
				// The records keep their bytes, which bbolt holds on to
				// until the commit.
				if anyDirty == nil || dirty.Get(sortKeyOf(ixOf[tag], key)) == nil {
					if err := bs[tag].Put(key, nil); err != nil {
						return err
					}
				}
				var err error
				if rec, err = it.next(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.c.group.yield(mark)
		if err := s.build.stepOf("append"); err != nil {
			return err
		}
	}
	return nil
}

// fixUpIndexes brings the keys changed during the build into the indexes:
// it removes each one's entries as they were when it first changed, adds
// its current ones, and, in the transaction that empties ixDirty, marks
// the indexes maintained again.
func (s *boltSource) fixUpIndexes(ctx context.Context) error {
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return err
		}
		mark, err := s.buildUpdate(func(src *bolt.Bucket) error {
			objs, dirty := src.Bucket(objectBucket), src.Bucket(ixDirty)
			ix := &indexes{mtime: src.Bucket(ixMtime), size: src.Bucket(ixSize), name: src.Bucket(ixName)}
			type fix struct{ sk, pre []byte }
			var fixes []fix
			c := dirty.Cursor()
			for k, v := c.First(); k != nil && len(fixes) < buildFixN; k, v = c.Next() {
				fixes = append(fixes, fix{append([]byte(nil), k...), append([]byte(nil), v...)})
			}
			for _, f := range fixes {
				key := s.order.FromSortKey(string(f.sk))
				if len(f.pre) == 17 {
					if err := ix.removeFields(f.sk, key, f.pre[1:9], f.pre[9:17]); err != nil {
						return err
					}
				}
				if v := objs.Get(f.sk); v != nil {
					e, err := decodeEntry(key, v)
					if err != nil {
						return fmt.Errorf("key %q: %w", key, err)
					}
					if err := ix.add(f.sk, &e.Object); err != nil {
						return err
					}
				}
				if err := dirty.Delete(f.sk); err != nil {
					return err
				}
			}
			if k, _ := dirty.Cursor().First(); k != nil {
				return nil
			}
			done = true
			if err := src.DeleteBucket(ixDirty); err != nil {
				return err
			}
			return src.Delete(keyIxState)
		})
		if err != nil {
			return fmt.Errorf("fix up: %w", err)
		}
		if !done {
			s.c.group.yield(mark)
		}
	}
	return nil
}

// dirtyPre is what ixDirty records of a key before a change during a
// build: 0 when it did not exist, else 1, its mtime and its size as the
// indexes encode them.
func dirtyPre(cur *Entry, exists bool) []byte {
	if !exists {
		return []byte{0}
	}
	return append(append([]byte{1}, mtimeValue(&cur.Object)...), orderedInt(cur.Size)...)
}

// removeFields removes the index entries of key (sort key sk) as they were
// with the given encoded mtime and size.
func (ix *indexes) removeFields(sk []byte, key string, mtime, size []byte) error {
	if err := ix.mtime.Delete(append(append([]byte(nil), mtime...), sk...)); err != nil {
		return err
	}
	if err := ix.size.Delete(append(append([]byte(nil), size...), sk...)); err != nil {
		return err
	}
	return ix.name.Delete(append(append([]byte(path.Base(key)), 0), sk...))
}

// IndexBuilder is a SourceBackend whose order indexes a first import can
// leave for later (bbolt; PostgreSQL maintains its own in every commit).
type IndexBuilder interface {
	DeferIndexes(ctx context.Context) error
	BuildIndexes(ctx context.Context) (built bool, err error)
}

// DeferIndexes makes the commits of an indexed source that has no indexes
// yet — a first import — leave them to BuildIndexes, which builds them in
// a fraction of what maintaining them key by key costs. Until then queries
// take the unindexed path. Without indexes, or on a backend that maintains
// them anyway, it does nothing.
func (s *Source) DeferIndexes(ctx context.Context) error {
	if b, ok := s.b.(IndexBuilder); ok && s.indexed {
		return b.DeferIndexes(ctx)
	}
	return nil
}

// BuildIndexes builds the indexes DeferIndexes left for later, while
// commits go on, and says whether there were any; it returns at once when
// there are none to build. A build that fails or is cancelled is begun
// again by the next call.
func (s *Source) BuildIndexes(ctx context.Context) (built bool, err error) {
	if b, ok := s.b.(IndexBuilder); ok && s.indexed {
		return b.BuildIndexes(ctx)
	}
	return false, nil
}

var _ IndexBuilder = (*boltSource)(nil)

// The states of a source's asset indexes (Source.IndexState).
const (
	IndexesOff      = ""         // the source keeps none
	IndexesReady    = "ready"    // maintained by every commit; queries use them
	IndexesPending  = "pending"  // left for a build after the first listing
	IndexesBuilding = "building" // the build runs
)

// IndexStater is a SourceBackend that can say where its indexes stand;
// one that is not maintains them in every commit.
type IndexStater interface {
	IndexState(ctx context.Context) (string, error)
}

// IndexState says where the source's asset indexes stand: IndexesOff,
// IndexesReady, IndexesPending or IndexesBuilding. Until they are ready,
// queries take the unindexed path.
func (s *Source) IndexState(ctx context.Context) (string, error) {
	if !s.indexed {
		return IndexesOff, nil
	}
	if b, ok := s.b.(IndexStater); ok {
		return b.IndexState(ctx)
	}
	return IndexesReady, nil
}

// IndexState implements IndexStater.
func (s *boltSource) IndexState(ctx context.Context) (string, error) {
	if !s.indexed {
		return IndexesOff, nil
	}
	state := IndexesPending // no bucket yet: built by the first commit or a build
	err := s.c.db.View(func(tx *bolt.Tx) error {
		src := s.bucket(tx)
		if src == nil {
			return nil
		}
		switch indexState(src) {
		case ixBuilding:
			state = IndexesBuilding
		case 0:
			if src.Bucket(ixMtime) != nil {
				state = IndexesReady
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("catalog: index state of %s: %w", s.id, err)
	}
	return state, nil
}
