package pgcatalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
)

// keyState is a key's state while a commit decides its mutations.
type keyState struct {
	cur    catalog.Entry
	exists bool
	had    bool // existed before the commit: a final absence is a DELETE
	mk     catalog.Marker
	marked bool
	dirty  bool // the entry must be written (or deleted)
	mdirty bool // the marker must be written
	queued bool // in the commit's write order
}

// Commit runs in one transaction: lock the source's row (commits of one
// source queue here, which is what numbers them without gaps), read the
// entries and markers of the keys in one round trip, decide each mutation
// with catalog.Decide, and write entries, markers, outbox records, the
// counters and the NOTIFY in a second one.
//
// Commits of the source that arrive while one runs are committed together
// in the next transaction (see commitGroup).
func (s *source) Commit(ctx context.Context, muts []catalog.Mutation, now time.Time) ([]catalog.Change, error) {
	for i := range muts {
		if muts[i].Object.Key == "" {
			return nil, fmt.Errorf("catalog: commit %s: mutation %d: empty key", s.id, i)
		}
	}
	return s.group.commit(ctx, s, &commitCall{muts: muts, now: now})
}

// commitGroup makes the commits of one source that queue behind a running
// one share the next transaction. The source's row lock serialises its
// commits, so each costs its round trips and its WAL flush while the
// others wait: on two loaded cores with fsync on, about 170 commits a
// second, a tenth of what bbolt's group commit sustains
// (docs/benchmarks.md). A group is the calls' mutations in queue order, as
// if committed one after the other, each call answered with the changes of
// its own mutations.
type commitGroup struct {
	mu    sync.Mutex
	queue []*commitCall
	busy  bool // a leader is committing, or about to
}

type commitCall struct {
	ctx     context.Context
	muts    []catalog.Mutation
	now     time.Time
	changes []catalog.Change
	err     error
	done    chan bool // buffered: true hands over the lead, false answers
}

// maxGroup bounds the mutations one group transaction takes beyond its
// first call, so that a group stays one short transaction.
const maxGroup = 5000

func (g *commitGroup) commit(ctx context.Context, s *source, c *commitCall) ([]catalog.Change, error) {
	c.ctx, c.done = ctx, make(chan bool, 1)
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	// A follower waits for its answer whatever its context says: once
	// queued, its mutations may be in a transaction that commits, and an
	// error for a commit that happened would be a lie.
	if lead || <-c.done {
		g.mu.Lock()
		n, size := 1, len(g.queue[0].muts)
		for n < len(g.queue) && size+len(g.queue[n].muts) <= maxGroup {
			size += len(g.queue[n].muts)
			n++
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		s.commitBatch(batch)
		g.mu.Lock()
		if len(g.queue) > 0 {
			next := g.queue[0]
			g.mu.Unlock()
			next.done <- true
		} else {
			g.busy = false
			g.mu.Unlock()
		}
		<-c.done
	}
	return c.changes, c.err
}

// commitBatch commits the calls in one transaction under the first one's
// context. If that fails and there were several, each is committed again
// alone under its own, so that one call's failure is not the others'. A
// failure reported for a transaction that did commit (a context cancelled
// during COMMIT) makes the retry apply the calls twice; for what syncer
// commits (a scan's guarded mutations, sequenced notifications) Decide
// finds the state and markers already there and records no second change.
// A lone call had the same ambiguity before groups existed.
func (s *source) commitBatch(batch []*commitCall) {
	err := s.commitTx(batch[0].ctx, batch)
	if err != nil && len(batch) > 1 {
		for _, c := range batch {
			c.err = s.commitTx(c.ctx, []*commitCall{c})
		}
	} else {
		for _, c := range batch {
			c.err = err
		}
	}
	for _, c := range batch {
		if c.err != nil {
			c.changes = nil
		}
		c.done <- false
	}
}

func (s *source) commitTx(ctx context.Context, calls []*commitCall) (err error) {
	// A panic becomes the calls' error: the followers of a leader that
	// panicked would otherwise wait for their answer forever.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("catalog: commit %s panicked: %v", s.id, p)
		}
	}()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("catalog: commit %s: %w", s.id, err)
	}
	for _, c := range calls {
		c.changes = nil
	}
	var n int
	err = pgx.BeginFunc(ctx, s.b.pool, func(tx pgx.Tx) error {
		var err error
		n, err = s.commit(ctx, tx, calls)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: commit %s: %w", s.id, err)
	}
	if n > 0 {
		s.b.signal(s.id)
	}
	return nil
}

// commit decides and writes the calls' mutations, in order, in tx, and
// fills each call's changes; it returns how many there were.
func (s *source) commit(ctx context.Context, tx pgx.Tx, calls []*commitCall) (int, error) {
	var (
		total  int
		sks    [][]byte
		marked [][]byte
	)
	for _, c := range calls {
		total += len(c.muts)
	}
	sks = make([][]byte, 0, total)
	for _, c := range calls {
		for i := range c.muts {
			sk := []byte(s.order.SortKey(c.muts[i].Object.Key))
			sks = append(sks, sk)
			if c.muts[i].NeedsMarker() {
				marked = append(marked, sk)
			}
		}
	}
	if err := s.checkFence(ctx, tx); err != nil {
		return 0, err
	}
	seq, count, hasMarkers, err := s.lock(ctx, tx)
	if err != nil {
		return 0, err
	}
	if !hasMarkers {
		marked = nil
	}
	state, err := s.read(ctx, tx, sks, marked)
	if err != nil {
		return 0, err
	}
	var (
		changes []catalog.Change
		order   []string // keys in first-seen order, for the writes
		j       int      // index into sks
	)
	for _, c := range calls {
		first := len(changes)
		for i := range c.muts {
			m := &c.muts[i]
			k := string(sks[j])
			j++
			st := state[k]
			if st == nil {
				st = &keyState{}
				state[k] = st
			}
			if !st.queued {
				st.queued = true
				order = append(order, k)
			}
			d := catalog.Decide(m, st.cur, st.exists, st.mk, st.marked, c.now)
			if d.PutMarker {
				st.mk, st.marked, st.mdirty = d.Marker, true, true
			}
			if d.Skip != catalog.Applied {
				continue
			}
			seq++
			ch := d.Change
			ch.Seq = uint64(seq)
			switch ch.Op {
			case catalog.Added:
				count++
			case catalog.Deleted:
				count--
			}
			st.cur, st.exists, st.dirty = catalog.Entry{Object: ch.Object, Seq: ch.Seq}, ch.Op != catalog.Deleted, true
			changes = append(changes, ch)
		}
		// Its share of the commit's changes, capped so that a caller's
		// append cannot write into the next call's.
		if len(changes) > first {
			c.changes = changes[first:len(changes):len(changes)]
		}
	}
	if err := s.write(ctx, tx, state, order, changes, seq, count); err != nil {
		return 0, err
	}
	return len(changes), nil
}

// lock takes the source's row for the transaction, creating it first. A
// source whose indexing was turned on or off has its rows moved into or out
// of the indexes here, so that an index is never stale or partial.
//
// marked says the source has markers at all: until its first notification
// a commit reads none.
func (s *source) lock(ctx context.Context, tx pgx.Tx) (seq, count int64, marked bool, err error) {
	const q = "SELECT seq, objects, indexed, marked FROM syncer_sources WHERE id = $1 FOR UPDATE"
	var indexed bool
	err = tx.QueryRow(ctx, q, s.id).Scan(&seq, &count, &indexed, &marked)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err = tx.Exec(ctx, "INSERT INTO syncer_sources (id, indexed) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", s.id, s.indexed); err != nil {
			return 0, 0, false, err
		}
		err = tx.QueryRow(ctx, q, s.id).Scan(&seq, &count, &indexed, &marked)
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("lock source: %w", err)
	}
	if indexed != s.indexed {
		if _, err := tx.Exec(ctx, "UPDATE syncer_objects SET ix = $2 WHERE source = $1", s.id, s.indexed); err != nil {
			return 0, 0, false, fmt.Errorf("reindex: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE syncer_sources SET indexed = $2 WHERE id = $1", s.id, s.indexed); err != nil {
			return 0, 0, false, fmt.Errorf("reindex: %w", err)
		}
	}
	if err := s.foldOld(ctx, tx); err != nil {
		return 0, 0, false, fmt.Errorf("fold keys: %w", err)
	}
	return seq, count, marked, nil
}

// read returns the current state of the keys sks, with the markers of
// marked, in one round trip.
func (s *source) read(ctx context.Context, tx pgx.Tx, sks, marked [][]byte) (map[string]*keyState, error) {
	state := make(map[string]*keyState, len(sks))
	if len(sks) == 0 {
		return state, nil
	}
	batch := &pgx.Batch{}
	// The gate (a one-time filter: the source's greatest key, one index
	// probe) skips the lookup of every key when all of them sort after the
	// source's last one, as a first scan's are: it found nothing there and
	// cost a first scan about an eighth of its server time (5,000 index
	// probes per commit).
	batch.Queue("SELECT "+entryColumns+` FROM syncer_objects WHERE source = $1 AND sk = ANY($2)
		AND $3::bytea <= (SELECT sk FROM syncer_objects WHERE source = $1 ORDER BY sk DESC LIMIT 1)`, s.id, sks, slices.MinFunc(sks, bytes.Compare))
	if len(marked) > 0 {
		batch.Queue("SELECT sk, seq, del, at FROM syncer_markers WHERE source = $1 AND sk = ANY($2)", s.id, marked)
	}
	res := tx.SendBatch(ctx, batch)
	defer res.Close()
	rows, err := res.Query()
	if err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	for rows.Next() {
		e, sk, err := s.scanEntry(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read entries: %w", err)
		}
		state[string(sk)] = &keyState{cur: e, exists: true, had: true}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	if len(marked) == 0 {
		return state, res.Close()
	}
	if rows, err = res.Query(); err != nil {
		return nil, fmt.Errorf("read markers: %w", err)
	}
	for rows.Next() {
		var (
			sk []byte
			mk catalog.Marker
			at int64
		)
		if err := rows.Scan(&sk, &mk.Seq, &mk.Delete, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read markers: %w", err)
		}
		mk.At = time.Unix(0, at).UTC()
		st := state[string(sk)]
		if st == nil {
			st = &keyState{}
			state[string(sk)] = st
		}
		st.mk, st.marked = mk, true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read markers: %w", err)
	}
	return state, res.Close()
}
