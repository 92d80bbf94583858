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
		var seq, count int64
		err := tx.QueryRow(ctx, "SELECT seq, objects FROM syncer_sources WHERE id = $1", s.id).Scan(&seq, &count)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return fn(catalog.NewSnapshot(uint64(seq), uint64(count), &snapshot{s: s, tx: tx, ctx: ctx}))
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
}

func (sn *snapshot) Get(key string) (catalog.Entry, bool, error) { return sn.s.get(sn.ctx, sn.tx, key) }

func (sn *snapshot) Range(ctx context.Context, prefix string, fn func(catalog.Entry) error) error {
	sp := []byte(sn.s.order.SortKey(prefix))
	const q = "SELECT " + entryColumns + " FROM syncer_objects WHERE source = $1 AND sk >= $2"
	if end := prefixEnd(sp); end != nil {
		return sn.s.each(ctx, sn.tx, fn, q+" AND sk < $3 ORDER BY sk", sn.s.id, sp, end)
	}
	return sn.s.each(ctx, sn.tx, fn, q+" ORDER BY sk", sn.s.id, sp)
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
// filter is Go code (the asset API's query), not SQL.
func (sn *snapshot) RangeMatch(ctx context.Context, match func(key []byte) bool, fn func(catalog.Entry) error) error {
	rows, err := sn.tx.Query(ctx, "SELECT "+entryColumns+" FROM syncer_objects WHERE source = $1 ORDER BY sk", sn.s.id)
	if err != nil {
		return err
	}
	defer rows.Close()
	utf16 := sn.s.order == providers.UTF16Order
	var buf []byte
	for rows.Next() {
		sk := rows.RawValues()[0]
		key := sk
		if utf16 {
			buf = append(buf[:0], sn.s.order.FromSortKey(string(sk))...)
			key = buf
		}
		if !match(key) {
			continue
		}
		e, _, err := sn.s.scanEntry(rows)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			if errors.Is(err, catalog.ErrStop) {
				return nil
			}
			return err
		}
	}
	return rows.Err()
}

// Indexed: the SQL indexes exist for every source.
func (sn *snapshot) Indexed() bool { return true }

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

func (sn *snapshot) Walk(ctx context.Context, ix catalog.Index, desc bool, skip int, fn func(catalog.Entry) error) error {
	by, ok := walkOrder[ix]
	if desc {
		by = walkOrderDesc[ix]
	}
	if !ok {
		return fmt.Errorf("catalog: no index %d", ix)
	}
	return sn.s.each(ctx, sn.tx, fn, "SELECT "+entryColumns+" FROM syncer_objects WHERE source = $1 ORDER BY "+by+" OFFSET $2",
		sn.s.id, skip)
}
