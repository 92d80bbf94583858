package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/imgly/syncer/providers"
)

// ErrStop, returned by a Range callback, ends the range without error.
var ErrStop = errors.New("stop")

// ErrLocked is returned (wrapped) by Open when another process holds the
// catalog; callers detect it with errors.Is, e.g. to ask that process over
// HTTP instead.
var ErrLocked = errors.New("locked by another process (is another syncer using it?)")

var (
	rootBucket   = []byte("sources")
	objectBucket = []byte("objects")
	outboxBucket = []byte("outbox")
	markerBucket = []byte("markers")
	keySeq       = []byte("seq")
	keyCount     = []byte("count")
	metaBucket   = []byte("meta")
	keyInstance  = []byte("instance")
)

// boltCatalog is the embedded, durable catalog: one bbolt file.
//
// bbolt was chosen for its ordered cursor scans (the diff's hot path), cheap
// read transactions and a single-writer model that matches one worker per
// catalog; see docs/design.md for the measurements behind the choice.
type boltCatalog struct {
	db       *bolt.DB
	group    *groupCommit
	instance string

	mu      sync.Mutex
	waiters map[string]chan struct{}
	builds  map[string]*sync.Mutex // one index build per source at a time
}

// Open opens (creating if needed) the catalog in dir.
func Open(dir string) (*Catalog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("catalog: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "catalog.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		// Short: a second process waiting longer gains nothing, since the
		// holder is a long-running worker, and the operator waits for it.
		Timeout: time.Second,
		// The freelist is kept on disk: without it every open walks every
		// page to rebuild it (0.4 s and a 10 MB spike at a million objects).
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("catalog %s: %w", dir, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	var instance string
	// An existing catalog is opened without a write, so read-only commands
	// and no-change rescans leave the file untouched.
	db.View(func(tx *bolt.Tx) error { //nolint:errcheck // a miss falls through to the Update
		if tx.Bucket(rootBucket) != nil && tx.Bucket(metaBucket) != nil {
			instance = string(tx.Bucket(metaBucket).Get(keyInstance))
		}
		return nil
	})
	if instance != "" {
		return newCatalog(db, instance), nil
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(rootBucket); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if v := meta.Get(keyInstance); v != nil {
			instance = string(v)
			return nil
		}
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		instance = hex.EncodeToString(b[:])
		return meta.Put(keyInstance, []byte(instance))
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("catalog: init %s: %w", path, err)
	}
	return newCatalog(db, instance), nil
}

func newCatalog(db *bolt.DB, instance string) *Catalog {
	return New(&boltCatalog{db: db, group: &groupCommit{db: db}, instance: instance, waiters: map[string]chan struct{}{}, builds: map[string]*sync.Mutex{}})
}

// InstanceID is a random id fixed when the catalog was created. Event ids
// include it, so that a catalog recreated from scratch — whose sequence
// numbers start again at 1 — never reuses an id the bus still remembers.
func (c *boltCatalog) InstanceID() string { return c.instance }

// Close closes the file.
func (c *boltCatalog) Close() error { return c.db.Close() }

// Sources lists the ids of the sources the catalog holds.
func (c *boltCatalog) Sources(ctx context.Context) ([]string, error) {
	var ids []string
	err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(rootBucket).ForEachBucket(func(k []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}

// Source returns the handle of one source, keeping the asset API's
// secondary indexes when indexed (see Source.Indexed).
func (c *boltCatalog) Source(id string, order providers.Order, indexed bool) SourceBackend {
	return &boltSource{c: c, id: id, bid: []byte(id), order: order, indexed: indexed, txNodes: scanTxNodes}
}

// signal wakes whoever waits for outbox records of source id.
func (c *boltCatalog) signal(id string) {
	c.mu.Lock()
	ch := c.waiters[id]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (c *boltCatalog) waiter(id string) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.waiters[id]
	if ch == nil {
		ch = make(chan struct{}, 1)
		c.waiters[id] = ch
	}
	return ch
}

// buildLock is the lock that keeps index builds of source id one at a time.
func (c *boltCatalog) buildLock(id string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	mu := c.builds[id]
	if mu == nil {
		mu = &sync.Mutex{}
		c.builds[id] = mu
	}
	return mu
}

// boltSource is one source's part of a bbolt catalog.
type boltSource struct {
	c       *boltCatalog
	id      string
	bid     []byte
	order   providers.Order
	indexed bool  // see Indexed
	txNodes int64 // scanTxNodes but in tests
	build   buildKnobs
}

// ID is the source id.
func (s *boltSource) ID() string { return s.id }

func (s *boltSource) bucket(tx *bolt.Tx) *bolt.Bucket {
	return tx.Bucket(rootBucket).Bucket(s.bid)
}

func (s *boltSource) writable(tx *bolt.Tx) (src, objs, out *bolt.Bucket, err error) {
	if src, err = tx.Bucket(rootBucket).CreateBucketIfNotExists(s.bid); err != nil {
		return
	}
	if objs, err = src.CreateBucketIfNotExists(objectBucket); err != nil {
		return
	}
	out, err = src.CreateBucketIfNotExists(outboxBucket)
	return
}

// Range calls fn for each entry whose key comes after `after` in the
// source's order ("" for the start), in that order, until fn returns an error.
// ErrStop ends the range cleanly. fn must not call back into the catalog.
func (s *boltSource) Range(ctx context.Context, after string, fn func(Entry) error) error {
	err := s.c.db.View(func(tx *bolt.Tx) error {
		src := s.bucket(tx)
		if src == nil {
			return nil
		}
		objs := src.Bucket(objectBucket)
		if objs == nil {
			return nil
		}
		cur := objs.Cursor()
		var k, v []byte
		if after == "" {
			k, v = cur.First()
		} else {
			sk := []byte(s.order.SortKey(after))
			k, v = cur.Seek(sk)
			if k != nil && bytes.Equal(k, sk) {
				k, v = cur.Next()
			}
		}
		for n := 0; k != nil; k, v = cur.Next() {
			if n++; n%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			e, err := decodeEntry(s.order.FromSortKey(string(k)), v)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrStop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("catalog: range %s: %w", s.id, err)
	}
	return nil
}

// Get returns the entry of key, and whether it exists.
func (s *boltSource) Get(ctx context.Context, key string) (Entry, bool, error) {
	var (
		e  Entry
		ok bool
	)
	err := s.c.db.View(func(tx *bolt.Tx) error {
		src := s.bucket(tx)
		if src == nil || src.Bucket(objectBucket) == nil {
			return nil
		}
		v := src.Bucket(objectBucket).Get([]byte(s.order.SortKey(key)))
		if v == nil {
			return nil
		}
		var err error
		e, err = decodeEntry(key, v)
		ok = err == nil
		return err
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("catalog: get %s %q: %w", s.id, key, err)
	}
	return e, ok, nil
}

// Stats are a source's counters.
type Stats struct {
	Objects uint64 // objects recorded
	LastSeq uint64 // sequence number of the last committed change
	Pending uint64 // changes in the outbox, not yet published
}

// Stats returns the source's counters.
func (s *boltSource) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.c.db.View(func(tx *bolt.Tx) error {
		src := s.bucket(tx)
		if src == nil {
			return nil
		}
		st.Objects = getU64(src, keyCount)
		st.LastSeq = getU64(src, keySeq)
		if out := src.Bucket(outboxBucket); out != nil {
			st.Pending = uint64(out.Stats().KeyN)
		}
		return nil
	})
	return st, err
}

// Commit implements SourceBackend.Commit.
func (s *boltSource) Commit(ctx context.Context, muts []Mutation, now time.Time) ([]Change, error) {
	var (
		changes []Change
		err     error
	)
	// Notifications arrive one message at a time from many goroutines; the
	// group commit folds concurrent ones into one transaction and one
	// fsync. A scan commits large batches from one goroutine and commits
	// directly, giving way to waiting notifications (commitScan).
	if notificationsOnly(muts) {
		changes, err = s.commitGrouped(muts, now)
	} else {
		changes, err = s.commitScan(muts, now)
	}
	if len(changes) > 0 {
		s.c.signal(s.id)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: commit %s: %w", s.id, err)
	}
	return changes, nil
}

// commitGrouped commits muts in a transaction shared with concurrent
// notification commits. A grouped function may run again if another in its
// group fails: it starts from scratch each time.
func (s *boltSource) commitGrouped(muts []Mutation, now time.Time) ([]Change, error) {
	var w *boltCommit
	err := s.c.group.update(func(tx *bolt.Tx) error {
		var err error
		if w, err = s.begin(tx, len(muts), now); err != nil {
			return err
		}
		for i := range muts {
			if err := w.apply(i, &muts[i]); err != nil {
				return err
			}
		}
		return w.finish()
	})
	if err != nil {
		return nil, err
	}
	return w.changes, nil
}

// A scan's transaction gives way to pending notification commits once it
// has held the writer for yieldAfter, checking every yieldEvery mutations.
// A notification then waits for about yieldAfter plus the commit of what
// the scan applied so far, instead of a whole batch of thousands (tens of
// milliseconds on a quiet machine, hundreds on a loaded one). The scan pays
// one more fsync per yield, and nothing when no notification waits.
const (
	yieldEvery = 64
	yieldAfter = 10 * time.Millisecond
)

// scanTxNodes bounds the B+tree nodes one scan transaction of an indexed
// source materializes: at the next check past it the transaction commits
// and the batch goes on in another. bbolt holds every node a transaction
// touched (its elements, then a page buffer each when it writes) until the
// commit, so that is what a transaction costs in memory. The asset API's
// order indexes put each key at a random place in trees that grow with the
// source, so an indexed batch of 5,000 touched up to 15,000 nodes and a
// first import's memory grew with the bucket (147–171 MB of anonymous RSS
// at 200,000 objects, 208 MB at 1,000,000); each node held costs the
// process about 12 KB at its peak (the node, a page buffer, and the
// garbage the collector has not reached yet). With the bound the memory no
// longer depends on the indexes' size (docs/benchmarks.md: 256 nodes 51–53
// MB, 512 65–70 MB, 1,024 77 MB at 200,000). The writes hardly change: once
// a tree has more leaves than a transaction has keys, each key dirties a
// leaf of its own whatever the transaction's size. An unindexed batch is
// not cut: its keys are sequential in every tree it touches (about 300
// nodes for 5,000 additions), so its size bounds its memory already, and
// each cut costs an fsync.
const scanTxNodes = 256

// commitScan commits muts in order, in one transaction unless notification
// commits are pending or the transaction has touched scanTxNodes nodes:
// then in several, each ended at the next check after yieldAfter (or past
// the bound), with the pending notifications committed in between. A failure
// leaves the earlier transactions committed, as if they had been separate
// batches; every scan mutation is guarded by the state it was computed from,
// so a notification in between is decided as it would be between batches.
func (s *boltSource) commitScan(muts []Mutation, now time.Time) ([]Change, error) {
	// Checked first so that a batch with a bad mutation commits none of it.
	for i := range muts {
		if muts[i].Object.Key == "" {
			return nil, fmt.Errorf("mutation %d: empty key", i)
		}
	}
	var (
		changes = make([]Change, 0, len(muts))
		arena   = make([]byte, 0, 160*len(muts))
	)
	hold := yieldAfter
	for done := 0; ; {
		var (
			w       *boltCommit
			next    int
			mark    uint64
			applied time.Time
		)
		err := s.c.db.Update(func(tx *bolt.Tx) error {
			var err error
			if w, err = s.beginWith(tx, now, arena, changes); err != nil {
				return err
			}
			if next, err = s.applyUntilYield(w, muts, done, hold); err != nil {
				return err
			}
			applied, mark = time.Now(), s.c.group.mark()
			return w.finish()
		})
		if err != nil {
			// changes still ends where the last committed transaction did.
			return changes, err
		}
		changes, arena = w.changes, w.arena
		if done = next; done == len(muts) {
			return changes, nil
		}
		s.c.group.yield(mark)
		// A yield costs the scan a commit of its own and the group's
		// transaction; holding at least that long before the next one
		// keeps that cost under half the scan's time however slow the
		// disk or the machine (on a loaded one, a fixed 10 ms made a
		// paced import twice as long).
		hold = max(yieldAfter, time.Since(applied))
	}
}

// applyUntilYield applies muts from index from on, and returns the index it
// stopped at: len(muts), or earlier when notification commits are pending
// and this transaction has applied for hold, or when it has touched
// scanTxNodes nodes.
func (s *boltSource) applyUntilYield(w *boltCommit, muts []Mutation, from int, hold time.Duration) (int, error) {
	held := time.Now()
	for i := from; i < len(muts); i++ {
		if i > from && (i-from)%yieldEvery == 0 {
			if s.c.group.pending() && time.Since(held) >= hold {
				return i, nil
			}
			if w.ix != nil && w.dirtyNodes() >= s.txNodes {
				return i, nil
			}
		}
		if err := w.apply(i, &muts[i]); err != nil {
			return 0, err
		}
	}
	return len(muts), nil
}

func notificationsOnly(muts []Mutation) bool {
	for i := range muts {
		if muts[i].Origin != Notification {
			return false
		}
	}
	return true
}

// Wait implements SourceBackend.Wait.
func (s *boltSource) Wait() <-chan struct{} { return s.c.waiter(s.id) }

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
