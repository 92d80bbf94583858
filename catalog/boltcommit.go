package catalog

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltCommit is one Commit's bbolt write transaction: the buckets it
// writes, the source's counters and the changes so far.
type boltCommit struct {
	s                     *boltSource
	tx                    *bolt.Tx
	src, objs, out, marks *bolt.Bucket
	ix                    *indexes
	// dirty, during an index build, records the keys changed (ixbuild.go).
	dirty  *bolt.Bucket
	search *searchBlocks // nil: the source keeps no indexes
	// bbolt holds on to keys and values until the commit, so they are
	// carved from one growing arena instead of allocated one by one; a
	// reallocation leaves the earlier slices on the old array, intact.
	arena      []byte
	seq, count uint64
	now        time.Time
	changes    []Change
}

// begin opens the source's buckets in tx for n mutations. A grouped
// transaction may run again: each run begins afresh.
func (s *boltSource) begin(tx *bolt.Tx, n int, now time.Time) (*boltCommit, error) {
	return s.beginWith(tx, now, make([]byte, 0, 160*n), make([]Change, 0, n))
}

// beginWith is begin writing keys and values into arena and appending the
// changes to changes. A scan's batch committed in several transactions
// passes each the arena of the one before (bbolt holds on to keys and
// values only until its commit) and the changes so far.
func (s *boltSource) beginWith(tx *bolt.Tx, now time.Time, arena []byte, changes []Change) (*boltCommit, error) {
	src, objs, out, err := s.writable(tx)
	if err != nil {
		return nil, err
	}
	objs.FillPercent = 0.9
	out.FillPercent = 1
	w := &boltCommit{s: s, tx: tx, src: src, objs: objs, out: out, now: now,
		marks: src.Bucket(markerBucket), // nil until first needed: most sources never see a notification
		arena: arena[:0], seq: getU64(src, keySeq), count: getU64(src, keyCount),
		changes: changes}
	if s.indexed {
		switch indexState(src) {
		case 0:
			w.ix, err = openIndexes(src, objs, s.order)
		case ixBuilding:
			w.dirty = src.Bucket(ixDirty)
		}
	} else {
		err = dropIndexes(src)
	}
	if err != nil {
		return nil, fmt.Errorf("indexes: %w", err)
	}
	if err := w.beginSearch(); err != nil {
		return nil, fmt.Errorf("search blocks: %w", err)
	}
	return w, nil
}

func (w *boltCommit) carve(start int) []byte { return w.arena[start:len(w.arena):len(w.arena)] }

// apply reads mutation i's key and marker, decides, and writes the outcome.
func (w *boltCommit) apply(i int, m *Mutation) error {
	if m.Object.Key == "" {
		return fmt.Errorf("mutation %d: empty key", i)
	}
	start := len(w.arena)
	w.arena = append(w.arena, w.s.order.SortKey(m.Object.Key)...)
	sk := w.carve(start)
	var (
		cur    Entry
		exists bool
		err    error
	)
	if v := w.objs.Get(sk); v != nil {
		if cur, err = decodeEntry(m.Object.Key, v); err != nil {
			return fmt.Errorf("key %q: %w", m.Object.Key, err)
		}
		exists = true
	}
	var (
		mk marker
		ok bool
	)
	if w.marks != nil && m.NeedsMarker() {
		mk, ok = decodeMarker(w.marks.Get(sk))
	}
	d := Decide(m, cur, exists, mk.exported(), ok, w.now)
	if d.PutMarker {
		if w.marks == nil {
			if w.marks, err = w.src.CreateBucketIfNotExists(markerBucket); err != nil {
				return err
			}
		}
		if err := w.marks.Put(sk, encodeMarker(d.Marker.Seq, d.Marker.Delete, d.Marker.At)); err != nil {
			return err
		}
	}
	if d.Skip != Applied {
		return nil
	}
	return w.record(sk, &cur, exists, d.Change)
}

// record writes change ch of key sk (whose entry was cur, if exists): the
// entry, the indexes and the outbox record under the next sequence number.
func (w *boltCommit) record(sk []byte, cur *Entry, exists bool, ch Change) error {
	w.seq++
	ch.Seq = w.seq
	if w.dirty != nil && w.dirty.Get(sk) == nil {
		if err := w.dirty.Put(sk, dirtyPre(cur, exists)); err != nil {
			return err
		}
	}
	if exists {
		if err := w.ix.remove(sk, &cur.Object); err != nil {
			return err
		}
	}
	w.searchChange(sk, cur, exists, &ch)
	if ch.Op == Deleted {
		if err := w.objs.Delete(sk); err != nil {
			return err
		}
		w.count--
	} else {
		if err := w.ix.add(sk, &ch.Object); err != nil {
			return err
		}
		start := len(w.arena)
		w.arena = encodeEntry(w.arena, w.seq, &ch.Object)
		if err := w.objs.Put(sk, w.carve(start)); err != nil {
			return err
		}
		if ch.Op == Added {
			w.count++
		}
	}
	start := len(w.arena)
	w.arena = binary.BigEndian.AppendUint64(w.arena, w.seq)
	k := w.carve(start)
	start = len(w.arena)
	w.arena = encodeChange(w.arena, &ch)
	if err := w.out.Put(k, w.carve(start)); err != nil {
		return err
	}
	w.changes = append(w.changes, ch)
	return nil
}

// finish stores the counters, when anything changed.
func (w *boltCommit) finish() error {
	if err := w.search.flush(); err != nil {
		return fmt.Errorf("search blocks: %w", err)
	}
	if len(w.changes) == 0 {
		return nil
	}
	if err := w.src.Put(keySeq, u64(w.seq)); err != nil {
		return err
	}
	return w.src.Put(keyCount, u64(w.count))
}

// beginSearch opens (building if missing) or drops the search blocks.
func (w *boltCommit) beginSearch() (err error) {
	if !w.s.indexed {
		return dropSearch(w.src, true)
	}
	w.search, err = openSearch(w.src, w.objs, w.s.order)
	return err
}

// searchChange notes a change for the search blocks: an add, a delete,
// or an update that changes a field the blocks hold (an update keeps its
// key, so its text stays as it is).
func (w *boltCommit) searchChange(sk []byte, cur *Entry, exists bool, ch *Change) {
	switch {
	case ch.Op == Deleted && exists:
		w.search.remove(sk)
	case ch.Op == Deleted:
	case !exists || cur.Size != ch.Object.Size || mtimeNanos(&cur.Object) != mtimeNanos(&ch.Object):
		w.search.put(sk, &ch.Object)
	}
}

// dirtyNodes is how many B+tree nodes the transaction has materialized so
// far (bbolt keeps each until the commit; see scanTxNodes).
func (w *boltCommit) dirtyNodes() int64 {
	st := w.tx.Stats()
	return st.GetNodeCount()
}
