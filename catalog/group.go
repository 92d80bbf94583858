package catalog

import (
	"fmt"
	"sync"

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
	g.handOver()
	return (<-c.done).err
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
