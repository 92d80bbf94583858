package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imgly/syncer/catalog"
)

// The asset API's text query on PostgreSQL: each row keeps its key folded
// (catalog.Fold) in `folded`, under a pg_trgm GIN index where the
// extension could be created (migrations/0004_search.sql), and Search asks
// for `folded LIKE '%text%'`, which that index answers from the hits'
// trigrams. Rows whose folded key is NULL (written before the column, or a
// key the database cannot store as text) are read too and checked in Go,
// so the answer is exact either way.

// serverUTF8 says the database keeps text in UTF-8: folded keys are text,
// and another encoding could refuse some of them.
func serverUTF8(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var enc string
	if err := pool.QueryRow(ctx, "SHOW server_encoding").Scan(&enc); err != nil {
		return false, fmt.Errorf("read server_encoding: %w", err)
	}
	return strings.EqualFold(enc, "UTF8"), nil
}

// folded is the folded-key column's value for key: NULL when it cannot be
// stored as text here.
func (s *source) folded(key string) any {
	f := catalog.Fold(key)
	if !s.b.utf8 || strings.IndexByte(f, 0) >= 0 {
		return nil
	}
	return f
}

// foldChunk bounds the rows one round of foldOld reads and updates.
const foldChunk = 10_000

// foldOld fills the folded keys of an indexed source's rows written before
// the column existed, at its first commit after the upgrade, like the
// other indexes. The partial index on NULL folded keys makes it one empty
// index probe once done.
func (s *source) foldOld(ctx context.Context, tx pgx.Tx) error {
	if !s.indexed || !s.b.utf8 {
		return nil
	}
	after := []byte{}
	for {
		rows, err := tx.Query(ctx, "SELECT sk FROM syncer_objects WHERE source = $1 AND folded IS NULL AND sk > $2 ORDER BY sk LIMIT $3",
			s.id, after, foldChunk)
		if err != nil {
			return err
		}
		sks, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return err
		}
		if len(sks) == 0 {
			return nil
		}
		folded := make([]*string, len(sks))
		for i, sk := range sks {
			if f, ok := s.folded(s.order.FromSortKey(string(sk))).(string); ok {
				folded[i] = &f
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE syncer_objects o SET folded = u.f FROM unnest($2::bytea[], $3::text[]) AS u(sk, f)
			WHERE o.source = $1 AND o.sk = u.sk`, s.id, sks, folded); err != nil {
			return err
		}
		if len(sks) < foldChunk {
			return nil
		}
		after = sks[len(sks)-1]
	}
}

// escapeLike quotes LIKE's wildcards and its escape character.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Search: see catalog.Snapshot.Search. The candidates come in key order;
// each is checked in Go too, which is what makes NULL rows exact.
func (sn *snapshot) Search(ctx context.Context, text string, match func(key []byte) bool, fn func(catalog.Entry) error) (bool, error) {
	if text == "" {
		return false, nil
	}
	hits := "source = $1 AND folded LIKE $2"
	if sn.indexed {
		hits += " AND ix" // the condition of the partial trigram index
	}
	// Two arms, so that each has its index (an OR makes the planner pick
	// neither); the unfolded arm is an empty probe once foldOld ran.
	sql := "SELECT " + entryColumns + " FROM syncer_objects WHERE " + hits +
		" UNION ALL SELECT " + entryColumns + " FROM syncer_objects WHERE source = $1 AND folded IS NULL ORDER BY sk"
	err := sn.s.each(ctx, sn.tx, func(e catalog.Entry, _ []byte) error {
		if !catalog.ContainsFold(e.Key, text) || match != nil && !match([]byte(e.Key)) {
			return nil
		}
		return fn(e)
	}, sql, sn.s.id, "%"+escapeLike(text)+"%")
	if errors.Is(err, catalog.ErrStop) {
		return true, nil
	}
	return true, err
}
