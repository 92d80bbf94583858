package pgcatalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// View reads in one REPEATABLE READ, read-only transaction: every query of
// the snapshot sees the same committed state, the one its Seq names.
func (s *source) View(ctx context.Context, fn func(*catalog.Snapshot) error) error {
	err := pgx.BeginTxFunc(ctx, s.b.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var (
			seq, count int64
			indexed    bool
		)
		err := tx.QueryRow(ctx, "SELECT seq, objects, indexed FROM syncer_sources WHERE id = $1", s.id).Scan(&seq, &count, &indexed)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return fn(catalog.NewSnapshot(uint64(seq), uint64(count), &snapshot{s: s, tx: tx, ctx: ctx, indexed: indexed, count: count}))
	})
	if err != nil {
		return fmt.Errorf("catalog: view %s: %w", s.id, err)
	}
	return nil
}

// snapshot is a catalog.SnapshotReader on a View's transaction.
type snapshot struct {
	s   *source
	tx  pgx.Tx
	ctx context.Context // the View's, for Get, which has none of its own
	// indexed: the source's rows are in the asset API's indexes, as of
	// its last commit.
	indexed bool
	count   int64 // the source's objects, as of the snapshot
}

func (sn *snapshot) Get(key string) (catalog.Entry, bool, error) { return sn.s.get(sn.ctx, sn.tx, key) }

func (sn *snapshot) Range(ctx context.Context, prefix string, fn func(catalog.Entry) error) error {
	sp := []byte(sn.s.order.SortKey(prefix))
	return sn.s.keyRange(ctx, sn.tx, sp, true, prefixEnd(sp), fn)
}

// prefixEnd is the least byte string greater than every one starting with
// p, nil if there is none (p is empty or all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// RangeMatch filters in the client, as the bbolt backend does: the key
// filter is Go code (the asset API's query), not SQL. It reads the keys in
// chunks of maxChunk and decodes only the matches.
func (sn *snapshot) RangeMatch(ctx context.Context, match func(key []byte) bool, fn func(catalog.Entry) error) error {
	return sn.rangeFrom(ctx, nil, true, match, fn)
}

// RangeAfter: see catalog.Snapshot.RangeAfter.
func (sn *snapshot) RangeAfter(ctx context.Context, key string, match func(key []byte) bool, fn func(catalog.Entry) error) error {
	if key == "" {
		return sn.rangeFrom(ctx, nil, true, match, fn)
	}
	return sn.rangeFrom(ctx, []byte(sn.s.order.SortKey(key)), false, match, fn)
}

// rangeFrom walks the keys from `from` (inclusive or not) to the end in
// chunks of maxChunk, decoding only what match (nil: all) accepts.
func (sn *snapshot) rangeFrom(ctx context.Context, from []byte, inclusive bool, match func(key []byte) bool, fn func(catalog.Entry) error) error {
	if match == nil {
		match = func([]byte) bool { return true }
	}
	utf16 := sn.s.order == providers.UTF16Order
	var buf []byte
	from = append([]byte{}, from...)
	op := ">"
	if inclusive {
		op = ">="
	}
	for ; ; op = ">" {
		rows, err := sn.tx.Query(ctx, "SELECT "+entryColumns+" FROM syncer_objects WHERE source = $1 AND sk "+op+" $2 ORDER BY sk LIMIT $3",
			sn.s.id, append([]byte{}, from...), maxChunk)
		if err != nil {
			return err
		}
		n, stop, err := sn.matchRows(rows, utf16, &buf, &from, match, fn)
		if stop || err != nil || n < maxChunk {
			return err
		}
	}
}

// matchRows is one chunk of RangeMatch: it returns the rows read, and stop
// when fn ended the walk.
func (sn *snapshot) matchRows(rows pgx.Rows, utf16 bool, buf, from *[]byte, match func([]byte) bool, fn func(catalog.Entry) error) (n int, stop bool, err error) {
	defer rows.Close()
	for rows.Next() {
		n++
		sk := rows.RawValues()[0]
		*from = append((*from)[:0], sk...)
		key := sk
		if utf16 {
			*buf = append((*buf)[:0], sn.s.order.FromSortKey(string(sk))...)
			key = *buf
		}
		if !match(key) {
			continue
		}
		e, _, err := sn.s.scanEntry(rows)
		if err != nil {
			return n, true, err
		}
		if err := fn(e); err != nil {
			if errors.Is(err, catalog.ErrStop) {
				return n, true, nil
			}
			return n, true, err
		}
	}
	return n, false, rows.Err()
}

func (sn *snapshot) Indexed() bool { return sn.indexed }

// walkOrder and walkOrderDesc match the partial indexes, whose condition
// (ix) Walk repeats so that the planner uses them.
var walkOrder = map[catalog.Index]string{
	catalog.IndexKey:          "sk",
	catalog.IndexLastModified: "mtime, sk",
	catalog.IndexSize:         "size, sk",
	catalog.IndexName:         "name, sk",
}

var walkOrderDesc = map[catalog.Index]string{
	catalog.IndexKey:          "sk DESC",
	catalog.IndexLastModified: "mtime DESC, sk DESC",
	catalog.IndexSize:         "size DESC, sk DESC",
	catalog.IndexName:         "name DESC, sk DESC",
}

// Walk pages with OFFSET in growing chunks, all in the View's
// transaction, so the pages are of one state.
func (sn *snapshot) Walk(ctx context.Context, ix catalog.Index, desc bool, skip int, fn func(catalog.Entry) error) error {
	by, ok := walkOrder[ix]
	if desc {
		by = walkOrderDesc[ix]
	}
	if !ok {
		return fmt.Errorf("catalog: no index %d", ix)
	}
	where := "source = $1"
	if ix != catalog.IndexKey {
		if !sn.indexed {
			return errors.New("catalog: source has no index yet")
		}
		where += " AND ix"
	}
	sql := "SELECT " + entryColumns + " FROM syncer_objects WHERE " + where + " ORDER BY " + by + " OFFSET $2 LIMIT $3"
	for limit := firstChunk; ; limit = min(2*limit, maxChunk) {
		n := 0
		err := sn.s.each(ctx, sn.tx, func(e catalog.Entry, _ []byte) error {
			n++
			return fn(e)
		}, sql, sn.s.id, skip, limit)
		if errors.Is(err, catalog.ErrStop) {
			return nil
		}
		if err != nil || n < limit {
			return err
		}
		skip += n
	}
}
