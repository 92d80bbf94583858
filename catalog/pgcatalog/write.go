package pgcatalog

import (
	"context"
	"fmt"
	"path"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
)

// upserts are the columns of syncer_objects rows to write, one slice per
// column, sent as arrays and unnested by the server: one statement for a
// whole batch.
type upserts struct {
	sk, name             [][]byte
	seq, size, mtime     []int64
	etag, version, ctype []string
}

// write queues the commit's writes in one batch and sends them.
func (s *source) write(ctx context.Context, tx pgx.Tx, state map[string]*keyState, order []string,
	changes []catalog.Change, seq, count int64) error {
	var (
		up    upserts
		gone  [][]byte
		mkSK  [][]byte
		mkSeq []string
		mkDel []bool
		mkAt  []int64
	)
	for _, k := range order {
		st := state[k]
		if st.dirty {
			switch {
			case st.exists:
				o := &st.cur.Object
				up.sk = append(up.sk, []byte(k))
				up.name = append(up.name, []byte(path.Base(o.Key)))
				up.seq = append(up.seq, int64(st.cur.Seq))
				up.size = append(up.size, o.Size)
				up.mtime = append(up.mtime, fromTime(o.LastModified))
				up.etag, up.version, up.ctype = append(up.etag, o.ETag), append(up.version, o.Version), append(up.ctype, o.ContentType)
			case st.had:
				gone = append(gone, []byte(k))
			}
		}
		if st.mdirty {
			mkSK, mkSeq, mkDel = append(mkSK, []byte(k)), append(mkSeq, st.mk.Seq), append(mkDel, st.mk.Delete)
			mkAt = append(mkAt, st.mk.At.UnixNano())
		}
	}
	batch := &pgx.Batch{}
	if len(mkSK) > 0 {
		batch.Queue(`INSERT INTO syncer_markers (source, sk, seq, del, at)
			SELECT $1, * FROM unnest($2::bytea[], $3::text[], $4::boolean[], $5::bigint[])
			ON CONFLICT (source, sk) DO UPDATE SET seq = EXCLUDED.seq, del = EXCLUDED.del, at = EXCLUDED.at`,
			s.id, mkSK, mkSeq, mkDel, mkAt)
	}
	if len(changes) == 0 {
		return sendBatch(ctx, tx, batch)
	}
	if len(gone) > 0 {
		batch.Queue("DELETE FROM syncer_objects WHERE source = $1 AND sk = ANY($2)", s.id, gone)
	}
	if len(up.sk) > 0 {
		batch.Queue(`INSERT INTO syncer_objects (source, ix, sk, name, seq, size, mtime, etag, version, ctype)
			SELECT $1, $10, * FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[])
			ON CONFLICT (source, sk) DO UPDATE SET name = EXCLUDED.name, seq = EXCLUDED.seq, size = EXCLUDED.size,
				mtime = EXCLUDED.mtime, etag = EXCLUDED.etag, version = EXCLUDED.version, ctype = EXCLUDED.ctype`,
			s.id, up.sk, up.name, up.seq, up.size, up.mtime, up.etag, up.version, up.ctype, s.indexed)
	}
	queueOutbox(batch, s.id, changes)
	batch.Queue("UPDATE syncer_sources SET seq = $2, objects = $3 WHERE id = $1", s.id, seq, count)
	batch.Queue("SELECT pg_notify($1, $2)", notifyChannel, s.id)
	return sendBatch(ctx, tx, batch)
}

func queueOutbox(batch *pgx.Batch, id string, changes []catalog.Change) {
	n := len(changes)
	var (
		seq, at, size, mtime = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		op, origin           = make([]int16, n), make([]int16, n)
		key                  = make([][]byte, n)
		etag, ver, ct        = make([]string, n), make([]string, n), make([]string, n)
	)
	for i := range changes {
		c := &changes[i]
		seq[i], at[i], size[i], mtime[i] = int64(c.Seq), c.At.UnixNano(), c.Object.Size, fromTime(c.Object.LastModified)
		op[i], origin[i], key[i] = int16(c.Op), int16(c.Origin), []byte(c.Object.Key)
		etag[i], ver[i], ct[i] = c.Object.ETag, c.Object.Version, c.Object.ContentType
	}
	batch.Queue(`INSERT INTO syncer_outbox (source, seq, op, origin, at, key, size, mtime, etag, version, ctype)
		SELECT $1, * FROM unnest($2::bigint[], $3::smallint[], $4::smallint[], $5::bigint[], $6::bytea[], $7::bigint[],
			$8::bigint[], $9::text[], $10::text[], $11::text[])`,
		id, seq, op, origin, at, key, size, mtime, etag, ver, ct)
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
