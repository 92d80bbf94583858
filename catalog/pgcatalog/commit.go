package pgcatalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
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
func (s *source) Commit(ctx context.Context, muts []catalog.Mutation, now time.Time) ([]catalog.Change, error) {
	var changes []catalog.Change
	err := pgx.BeginFunc(ctx, s.b.pool, func(tx pgx.Tx) error {
		var err error
		changes, err = s.commit(ctx, tx, muts, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: commit %s: %w", s.id, err)
	}
	if len(changes) > 0 {
		s.b.signal(s.id)
	}
	return changes, nil
}

func (s *source) commit(ctx context.Context, tx pgx.Tx, muts []catalog.Mutation, now time.Time) ([]catalog.Change, error) {
	sks := make([][]byte, len(muts))
	var marked [][]byte
	for i := range muts {
		if muts[i].Object.Key == "" {
			return nil, fmt.Errorf("mutation %d: empty key", i)
		}
		sks[i] = []byte(s.order.SortKey(muts[i].Object.Key))
		if muts[i].NeedsMarker() {
			marked = append(marked, sks[i])
		}
	}
	if err := s.checkFence(ctx, tx); err != nil {
		return nil, err
	}
	seq, count, hasMarkers, err := s.lock(ctx, tx)
	if err != nil {
		return nil, err
	}
	if !hasMarkers {
		marked = nil
	}
	state, err := s.read(ctx, tx, sks, marked)
	if err != nil {
		return nil, err
	}
	var (
		changes []catalog.Change
		order   []string // keys in first-seen order, for the writes
	)
	for i := range muts {
		m := &muts[i]
		k := string(sks[i])
		st := state[k]
		if st == nil {
			st = &keyState{}
			state[k] = st
		}
		if !st.queued {
			st.queued = true
			order = append(order, k)
		}
		d := catalog.Decide(m, st.cur, st.exists, st.mk, st.marked, now)
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
	if err := s.write(ctx, tx, state, order, changes, seq, count); err != nil {
		return nil, err
	}
	return changes, nil
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
