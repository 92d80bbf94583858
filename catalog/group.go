package catalog

import (
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// groupCommit folds concurrent updates into one transaction and one fsync.
// Unlike bbolt's Batch it has no timer: an update that finds no transaction
// running commits at once, and those that arrive while one runs are
// committed together right after it. Batches grow with the load (and with
// the disk's fsync time) instead of every commit waiting out a delay, which
// at 2,000 notifications/s was most of a commit's latency.
type groupCommit struct {
	db *bolt.DB

	mu    sync.Mutex
	queue []*groupCall
	busy  bool // a leader is committing, or about to

	// What a long transaction outside the group (a scan's batch) needs to
	// give way to it; see pending and yield.
	waiting  atomic.Int64  // calls queued or in a transaction, not yet answered
	finished uint64        // under mu: group transactions ended
	turn     chan struct{} // under mu: closed when the next one ends; nil if nobody waits
}

type groupCall struct {
	fn   func(*bolt.Tx) error
	done chan groupOutcome // buffered: one lead hand-over, then one result
}

type groupOutcome struct {
	err  error
	lead bool // commit the queue, then hand over
}

// update runs fn in a write transaction shared with concurrent callers. fn
// may run more than once (when another function of its batch fails, the
// rest are committed again without it), so it must start from scratch each
// time.
func (g *groupCommit) update(fn func(*bolt.Tx) error) error {
	c := &groupCall{fn: fn, done: make(chan groupOutcome, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	g.waiting.Add(1)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead {
		o := <-c.done
		if !o.lead {
			return o.err
		}
	}
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.commit(batch)
	g.ended(len(batch))
	g.handOver()
	return (<-c.done).err
}

// ended notes that a group transaction of n calls has ended (committed or
// not), and wakes a transaction that yielded to it.
func (g *groupCommit) ended(n int) {
	g.mu.Lock()
	g.waiting.Add(-int64(n))
	g.finished++
	if g.turn != nil {
		close(g.turn)
		g.turn = nil
	}
	g.mu.Unlock()
}

// pending reports whether grouped calls wait for the writer. A long
// transaction outside the group polls it to end early and let them in: the
// writer is bbolt's one lock, and without this a notification that arrives
// at the start of a scan's batch of thousands waits out the whole batch.
func (g *groupCommit) pending() bool { return g.waiting.Load() > 0 }

// mark returns how many group transactions have ended; taken inside the
// yielding transaction, it is what yield waits to see move.
func (g *groupCommit) mark() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.finished
}

// yield waits, after a transaction that ended early because calls were
// pending, until one group transaction has ended since mark, or nothing is
// pending. One, not all: at a high notification rate the group always has
// calls pending, and the yielding transaction must get its turn too.
func (g *groupCommit) yield(mark uint64) {
	g.mu.Lock()
	for g.finished == mark && g.waiting.Load() > 0 {
		if g.turn == nil {
			g.turn = make(chan struct{})
		}
		turn := g.turn
		g.mu.Unlock()
		<-turn
		g.mu.Lock()
	}
	g.mu.Unlock()
}

// handOver makes whoever queued meanwhile lead the next batch, so that the
// current leader returns with its own result instead of committing for
// others.
func (g *groupCommit) handOver() {
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.mu.Unlock()
		next.done <- groupOutcome{lead: true}
		return
	}
	g.busy = false
	g.mu.Unlock()
}

// commit runs batch in one transaction. A function that fails is answered
// with its error from a transaction of its own, and the others are
// committed again without it.
func (g *groupCommit) commit(batch []*groupCall) {
	for len(batch) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, c := range batch {
				if err := safely(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range batch {
				c.done <- groupOutcome{err: err}
			}
			return
		}
		bad := batch[failed]
		bad.done <- groupOutcome{err: g.db.Update(func(tx *bolt.Tx) error { return safely(bad.fn, tx) })}
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

// safely runs fn, turning a panic into its error: a panicking update must
// not leave the others of its group, and every later one, waiting forever.
func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("catalog: update panicked: %v", p)
		}
	}()
	return fn(tx)
}
