package pgcatalog

import (
	"context"
	"fmt"
	"path"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
)

// write sends the commit's writes: keys new to the catalog and the outbox
// records by COPY (plain inserts: no other commit of the source can insert
// the same key while this one holds the source's row), everything else in
// one batch. Measured per 5,000 rows into a 200,000-row table: COPY 13-28
// ms, INSERT ... ON CONFLICT from unnest 37-61 ms (docs/benchmarks.md).
func (s *source) write(ctx context.Context, tx pgx.Tx, state map[string]*keyState, order []string,
	changes []catalog.Change, seq, count int64) error {
	var (
		fresh [][]any // rows of keys absent before the commit
		up    objectColumns
		gone  [][]byte
		mk    markerColumns
	)
	for _, k := range order {
		st := state[k]
		if st.mdirty {
			mk.add([]byte(k), st.mk)
		}
		switch {
		case !st.dirty:
		case st.exists && !st.had:
			o := &st.cur.Object
			fresh = append(fresh, []any{s.id, s.indexed, []byte(k), []byte(path.Base(o.Key)), int64(st.cur.Seq), o.Size,
				fromTime(o.LastModified), o.ETag, o.Version, o.ContentType, s.folded(o.Key)})
		case st.exists:
			up.add([]byte(k), &st.cur)
		case st.had:
			gone = append(gone, []byte(k))
		}
	}
	batch := &pgx.Batch{}
	if mk.queue(batch, s.id) {
		batch.Queue("UPDATE syncer_sources SET marked = true WHERE id = $1 AND NOT marked", s.id)
	}
	if len(changes) > 0 {
		if len(gone) > 0 {
			batch.Queue("DELETE FROM syncer_objects WHERE source = $1 AND sk = ANY($2)", s.id, gone)
		}
		up.queue(batch, s.id)
		batch.Queue("UPDATE syncer_sources SET seq = $2, objects = $3 WHERE id = $1", s.id, seq, count)
		batch.Queue("SELECT pg_notify($1, $2)", notifyChannel, s.id)
	}
	if err := sendBatch(ctx, tx, batch); err != nil {
		return err
	}
	if len(fresh) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"syncer_objects"},
			[]string{"source", "ix", "sk", "name", "seq", "size", "mtime", "etag", "version", "ctype", "folded"}, pgx.CopyFromRows(fresh)); err != nil {
			return fmt.Errorf("write objects: %w", err)
		}
	}
	return copyOutbox(ctx, tx, s.id, changes)
}

// objectColumns are rows of syncer_objects to update, one slice per
// column, sent as arrays and unnested by the server: one statement.
type objectColumns struct {
	sk, name             [][]byte
	seq, size, mtime     []int64
	etag, version, ctype []string
}

func (c *objectColumns) add(sk []byte, e *catalog.Entry) {
	o := &e.Object
	c.sk, c.name = append(c.sk, sk), append(c.name, []byte(path.Base(o.Key)))
	c.seq, c.size, c.mtime = append(c.seq, int64(e.Seq)), append(c.size, o.Size), append(c.mtime, fromTime(o.LastModified))
	c.etag, c.version, c.ctype = append(c.etag, o.ETag), append(c.version, o.Version), append(c.ctype, o.ContentType)
}

func (c *objectColumns) queue(batch *pgx.Batch, id string) {
	if len(c.sk) == 0 {
		return
	}
	batch.Queue(`UPDATE syncer_objects o SET name = u.name, seq = u.seq, size = u.size, mtime = u.mtime,
			etag = u.etag, version = u.version, ctype = u.ctype
		FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[])
			AS u(sk, name, seq, size, mtime, etag, version, ctype)
		WHERE o.source = $1 AND o.sk = u.sk`,
		id, c.sk, c.name, c.seq, c.size, c.mtime, c.etag, c.version, c.ctype)
}

// markerColumns are markers to upsert.
type markerColumns struct {
	sk  [][]byte
	seq []string
	del []bool
	at  []int64
}

func (c *markerColumns) add(sk []byte, m catalog.Marker) {
	c.sk, c.seq, c.del, c.at = append(c.sk, sk), append(c.seq, m.Seq), append(c.del, m.Delete), append(c.at, m.At.UnixNano())
}

// queue queues the upsert, if any, and says so.
func (c *markerColumns) queue(batch *pgx.Batch, id string) bool {
	if len(c.sk) == 0 {
		return false
	}
	batch.Queue(`INSERT INTO syncer_markers (source, sk, seq, del, at)
		SELECT $1, * FROM unnest($2::bytea[], $3::text[], $4::boolean[], $5::bigint[])
		ON CONFLICT (source, sk) DO UPDATE SET seq = EXCLUDED.seq, del = EXCLUDED.del, at = EXCLUDED.at`,
		id, c.sk, c.seq, c.del, c.at)
	return true
}

func copyOutbox(ctx context.Context, tx pgx.Tx, id string, changes []catalog.Change) error {
	if len(changes) == 0 {
		return nil
	}
	rows := make([][]any, len(changes))
	for i := range changes {
		c := &changes[i]
		rows[i] = []any{id, int64(c.Seq), int16(c.Op), int16(c.Origin), c.At.UnixNano(), []byte(c.Object.Key), c.Object.Size,
			fromTime(c.Object.LastModified), c.Object.ETag, c.Object.Version, c.Object.ContentType}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"syncer_outbox"},
		[]string{"source", "seq", "op", "origin", "at", "key", "size", "mtime", "etag", "version", "ctype"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	return nil
}

func sendBatch(ctx context.Context, tx pgx.Tx, batch *pgx.Batch) error {
	if batch.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
