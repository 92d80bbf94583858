package pgcatalog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// source is one source's part of the catalog.
type source struct {
	b       *backend
	id      string
	order   providers.Order
	indexed bool           // its rows go into the asset API's (partial) indexes
	fence   *catalog.Fence // nil: commits unfenced (see Fenced)
	group   *commitGroup   // this source's (and fence's) commits in flight
}

// unknownTime stands for an unknown LastModified: it sorts first.
const unknownTime = math.MinInt64

func fromTime(t time.Time) int64 {
	if t.IsZero() {
		return unknownTime
	}
	return t.UnixNano()
}

func toTime(ns int64) time.Time {
	if ns == unknownTime {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// entryColumns are what scanEntry reads, in its order.
const entryColumns = "sk, seq, size, mtime, etag, version, ctype"

// queryer is a pool or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// scanEntry reads one row of entryColumns, decoding the binary values
// itself (a rescan reads every row; pgx's Scan costs more than the rest of
// the row's handling). It returns the stored sort key too, valid only until
// the next row.
func (s *source) scanEntry(rows pgx.Rows) (catalog.Entry, []byte, error) {
	raw := rows.RawValues()
	if !binaryEntry(rows.FieldDescriptions(), raw) {
		return s.scanEntrySlow(rows)
	}
	e := catalog.Entry{Object: providers.Object{
		Key:  s.order.FromSortKey(string(raw[0])),
		Size: int64(binary.BigEndian.Uint64(raw[2])), LastModified: toTime(int64(binary.BigEndian.Uint64(raw[3]))),
		ETag: string(raw[4]), Version: string(raw[5]), ContentType: string(raw[6]),
	}, Seq: binary.BigEndian.Uint64(raw[1])}
	return e, raw[0], nil
}

// binaryEntry says the row came in the binary format scanEntry decodes:
// no NULL (the columns are NOT NULL), 8-byte integers.
func binaryEntry(fds []pgconn.FieldDescription, raw [][]byte) bool {
	if len(raw) != 7 || len(fds) != 7 {
		return false
	}
	for i, v := range raw {
		if v == nil {
			return false
		}
		switch i {
		case 1, 2, 3:
			if fds[i].Format != pgx.BinaryFormatCode || len(v) != 8 {
				return false
			}
		}
	}
	return true
}

func (s *source) scanEntrySlow(rows pgx.Rows) (catalog.Entry, []byte, error) {
	var (
		e     catalog.Entry
		sk    []byte
		mtime int64
		seq   int64
	)
	if err := rows.Scan(&sk, &seq, &e.Size, &mtime, &e.ETag, &e.Version, &e.ContentType); err != nil {
		return catalog.Entry{}, nil, err
	}
	e.Key = s.order.FromSortKey(string(sk))
	e.Seq, e.LastModified = uint64(seq), toTime(mtime)
	return e, sk, nil
}

// each streams the entries of a query to fn, with each one's stored sort
// key; ErrStop ends it cleanly. The query must be bounded (LIMIT): rows
// left unread when fn stops are still read off the wire by pgx.
func (s *source) each(ctx context.Context, q queryer, fn func(catalog.Entry, []byte) error, sql string, args ...any) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, sk, err := s.scanEntry(rows)
		if err != nil {
			return err
		}
		if err := fn(e, sk); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Chunks of a range: the first small, because the reconciler reads one
// listing page's worth (~1,000 keys) per Range and stops, then doubling,
// so that a long range costs few round trips.
const firstChunk, maxChunk = 1024, 8192

// keyRange calls fn for the entries with sort keys after from (from
// itself too when inclusive) and before end (nil: no end), in order, a
// chunk per query.
func (s *source) keyRange(ctx context.Context, q queryer, from []byte, inclusive bool, end []byte, fn func(catalog.Entry) error) error {
	op := ">"
	if inclusive {
		op = ">="
	}
	for limit := firstChunk; ; limit = min(2*limit, maxChunk) {
		sql := "SELECT " + entryColumns + " FROM syncer_objects WHERE source = $1 AND sk " + op + " $2"
		args := []any{s.id, from, limit}
		if end != nil {
			sql += " AND sk < $4"
			args = append(args, end)
		}
		n := 0
		err := s.each(ctx, q, func(e catalog.Entry, sk []byte) error {
			n++
			from = append(from[:0:0], sk...)
			return fn(e)
		}, sql+" ORDER BY sk LIMIT $3", args...)
		if errors.Is(err, catalog.ErrStop) {
			return nil
		}
		if err != nil || n < limit {
			return err
		}
		op = ">"
	}
}

func (s *source) Range(ctx context.Context, after string, fn func(catalog.Entry) error) error {
	if err := s.keyRange(ctx, s.b.pool, []byte(s.order.SortKey(after)), false, nil, fn); err != nil {
		return fmt.Errorf("catalog: range %s: %w", s.id, err)
	}
	return nil
}

func (s *source) Get(ctx context.Context, key string) (catalog.Entry, bool, error) {
	e, ok, err := s.get(ctx, s.b.pool, key)
	if err != nil {
		return catalog.Entry{}, false, fmt.Errorf("catalog: get %s %q: %w", s.id, key, err)
	}
	return e, ok, nil
}

func (s *source) get(ctx context.Context, q queryer, key string) (catalog.Entry, bool, error) {
	var (
		e  catalog.Entry
		ok bool
	)
	err := s.each(ctx, q, func(got catalog.Entry, _ []byte) error {
		e, ok = got, true
		return nil
	}, "SELECT "+entryColumns+" FROM syncer_objects WHERE source = $1 AND sk = $2", s.id, []byte(s.order.SortKey(key)))
	return e, ok, err
}

func (s *source) Stats(ctx context.Context) (catalog.Stats, error) {
	var seq, objects, pending int64
	err := s.b.pool.QueryRow(ctx, `SELECT seq, objects, (SELECT count(*) FROM syncer_outbox WHERE source = $1)
		FROM syncer_sources WHERE id = $1`, s.id).Scan(&seq, &objects, &pending)
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.Stats{}, nil
	}
	if err != nil {
		return catalog.Stats{}, fmt.Errorf("catalog: stats %s: %w", s.id, err)
	}
	return catalog.Stats{Objects: uint64(objects), LastSeq: uint64(seq), Pending: uint64(pending)}, nil
}

func (s *source) LastSeq(ctx context.Context) (uint64, error) {
	var seq int64
	err := s.b.pool.QueryRow(ctx, "SELECT seq FROM syncer_sources WHERE id = $1", s.id).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("catalog: last seq %s: %w", s.id, err)
	}
	return uint64(seq), nil
}

func (s *source) Wait() <-chan struct{} { return s.b.waiter(s.id) }

func (s *source) Outbox(ctx context.Context, from uint64, limit int) ([]catalog.Change, error) {
	if s.fence != nil {
		return s.fencedOutbox(ctx, from, limit)
	}
	return s.outbox(ctx, s.b.pool, from, limit)
}

func (s *source) outbox(ctx context.Context, q querier, from uint64, limit int) ([]catalog.Change, error) {
	rows, err := q.Query(ctx, `SELECT seq, op, origin, at, key, size, mtime, etag, version, ctype
		FROM syncer_outbox WHERE source = $1 AND seq >= $2 ORDER BY seq LIMIT $3`, s.id, int64(from), limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: outbox %s: %w", s.id, err)
	}
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.Change, error) {
		var (
			c             catalog.Change
			seq, at, mt   int64
			op, origin    int16
			key           []byte
			size          int64
			etag, ver, ct string
		)
		if err := row.Scan(&seq, &op, &origin, &at, &key, &size, &mt, &etag, &ver, &ct); err != nil {
			return c, err
		}
		c.Seq, c.Op, c.Origin, c.At = uint64(seq), catalog.Op(op), catalog.Origin(origin), time.Unix(0, at).UTC()
		c.Object = providers.Object{Key: string(key), Size: size, LastModified: toTime(mt), ETag: etag, Version: ver, ContentType: ct}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: outbox %s: %w", s.id, err)
	}
	return changes, nil
}

func (s *source) Ack(ctx context.Context, through uint64) error {
	err := pgx.BeginFunc(ctx, s.b.pool, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM syncer_outbox WHERE source = $1 AND seq <= $2", s.id, int64(through))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: ack %s through %d: %w", s.id, through, err)
	}
	return nil
}

func (s *source) ListingState(ctx context.Context) (catalog.ListingState, error) {
	var (
		st     catalog.ListingState
		resume []byte
	)
	err := s.b.pool.QueryRow(ctx, "SELECT listed, resume FROM syncer_sources WHERE id = $1", s.id).Scan(&st.Complete, &resume)
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.ListingState{}, nil
	}
	if err != nil {
		return catalog.ListingState{}, fmt.Errorf("catalog: listing state %s: %w", s.id, err)
	}
	if resume != nil {
		st.InProgress, st.After = true, string(resume)
	}
	return st, nil
}

func (s *source) SetListingProgress(ctx context.Context, after string) error {
	_, err := s.b.pool.Exec(ctx, `INSERT INTO syncer_sources (id, resume) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET resume = EXCLUDED.resume`, s.id, append([]byte{}, after...))
	if err != nil {
		return fmt.Errorf("catalog: record listing progress of %s: %w", s.id, err)
	}
	return nil
}

// SetListingComplete writes only when that changes something, so that a
// rescan writes no row.
func (s *source) SetListingComplete(ctx context.Context) error {
	_, err := s.b.pool.Exec(ctx, `INSERT INTO syncer_sources (id, listed) VALUES ($1, true)
		ON CONFLICT (id) DO UPDATE SET listed = true, resume = NULL
		WHERE NOT syncer_sources.listed OR syncer_sources.resume IS NOT NULL`, s.id)
	if err != nil {
		return fmt.Errorf("catalog: record listing complete of %s: %w", s.id, err)
	}
	return nil
}
