package pgcatalog

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/providers"
)

// RecordOrder records the source's key order unless one is, in one
// statement (replicas opening the source at once agree on the first), and
// returns the one that was. A recorded order is not written again: every
// scan opens its source, and a no-change rescan writes no row.
func (s *source) RecordOrder(ctx context.Context) (stored providers.Order, had bool, err error) {
	// The CTE reads the row as it was before this statement's write.
	var prev *string
	err = s.b.pool.QueryRow(ctx, `WITH before AS (SELECT korder FROM syncer_sources WHERE id = $1),
		put AS (INSERT INTO syncer_sources (id, korder) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET korder = EXCLUDED.korder WHERE syncer_sources.korder IS NULL)
		SELECT (SELECT korder FROM before)`, s.id, s.order.String()).Scan(&prev)
	if err != nil || prev == nil {
		return 0, false, err
	}
	o, err := providers.ParseOrder(*prev)
	return o, err == nil, err
}

// RecordedOrder reads the order recorded for source id.
func (b *backend) RecordedOrder(ctx context.Context, id string) (o providers.Order, ok bool, err error) {
	var v *string
	err = b.pool.QueryRow(ctx, "SELECT korder FROM syncer_sources WHERE id = $1", id).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && v == nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	o, err = providers.ParseOrder(*v)
	return o, err == nil, err
}
