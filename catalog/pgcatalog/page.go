package pgcatalog

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/imgly/syncer/catalog"
)

// The asset API's page on PostgreSQL (catalog.Pager): the filters and the
// order run in SQL, so that a page ships its own rows and the total is a
// count on the server instead of every match decoded in Go. Both queries
// run in the View's REPEATABLE READ transaction, so they and the
// snapshot's Seq describe one state. What SQL cannot say exactly is left
// to the caller's path (handled false): tags, rows without a folded key,
// and keys outside the prefix (the relative part would differ).

// pageSQL is a WHERE clause under construction with its arguments.
type pageSQL struct {
	where strings.Builder
	args  []any
}

// arg adds v and returns its placeholder.
func (w *pageSQL) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// Page: see catalog.Pager.
func (sn *snapshot) Page(ctx context.Context, q catalog.PageQuery) ([]catalog.Entry, int, bool, error) {
	by, ok := walkOrder[q.Sort]
	if q.Desc {
		by = walkOrderDesc[q.Sort]
	}
	if !ok || q.Limit < 1 || q.Offset < 0 || !sn.expressible(q) {
		return nil, 0, false, nil
	}
	w := sn.pageWhere(q)
	batch := &pgx.Batch{}
	checked := sn.queueChecks(batch, q)
	// The total: the catalog's count without filters; with text, counted
	// by the page's own query (a window over its one pass over the hits'
	// rows, which both need); else a count of key ranges beside it.
	total := counted
	switch {
	case q.Text != "":
		total = windowed
	case len(q.Groups) > 0 || len(q.ExcludeGroups) > 0:
		total = separately
		batch.Queue("SELECT count(*) FROM syncer_objects WHERE "+w.where.String(), w.args...)
	}
	args := slices.Clip(w.args)
	batch.Queue(pageQuery(w.where.String(), by, len(args), q), append(args, q.Offset, q.Limit)...)
	page, n, handled, err := sn.readPage(ctx, batch, checked, total)
	if err == nil && handled && total == windowed && len(page) == 0 && q.Offset > 0 {
		// The page is past the end: no row carried the count.
		err = sn.tx.QueryRow(ctx, "SELECT count(*) FROM syncer_objects WHERE "+w.where.String(), w.args...).Scan(&n)
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("catalog: page of %s: %w", sn.s.id, err)
	}
	return page, int(n), handled, nil
}

// How a page's total is had.
type totalBy int

const (
	counted    totalBy = iota // the snapshot's count of objects
	separately                // a count(*) query of its own
	windowed                  // count(*) OVER () on each of the page's rows
)

// pageQuery is the page's SQL; its offset and limit are the arguments
// after the filter's n. A deep page without text skips its offset in the
// order index alone (an index-only scan: its columns hold the order and,
// in sk, the groups) and reads only the page's rows from the table,
// instead of fetching every skipped row; text needs the rows' folded
// keys, so it filters the rows themselves.
func pageQuery(where, by string, n int, q catalog.PageQuery) string {
	limits := " ORDER BY " + by + " OFFSET $" + strconv.Itoa(n+1) + " LIMIT $" + strconv.Itoa(n+2)
	if q.Text != "" {
		return "SELECT " + entryColumns + ", count(*) OVER () FROM syncer_objects WHERE " + where + limits
	}
	if q.Offset == 0 {
		return "SELECT " + entryColumns + " FROM syncer_objects WHERE " + where + limits
	}
	return "SELECT " + entryColumns + " FROM syncer_objects WHERE source = $1 AND sk IN (SELECT sk FROM syncer_objects WHERE " +
		where + limits + ") ORDER BY " + by
}

// readPage sends the batch and reads its answers: the checks (when
// checked), the count (when separately) and the page, with the total.
func (sn *snapshot) readPage(ctx context.Context, batch *pgx.Batch, checked bool, by totalBy) ([]catalog.Entry, int64, bool, error) {
	br := sn.tx.SendBatch(ctx, batch)
	defer br.Close()
	if checked {
		var inexact bool
		if err := br.QueryRow().Scan(&inexact); err != nil {
			return nil, 0, false, err
		}
		if inexact {
			return nil, 0, false, nil
		}
	}
	total := sn.count
	if by == separately {
		if err := br.QueryRow().Scan(&total); err != nil {
			return nil, 0, false, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, 0, false, err
	}
	defer rows.Close()
	var page []catalog.Entry
	for rows.Next() {
		var (
			e   catalog.Entry
			err error
		)
		if by == windowed {
			e, total, err = sn.scanCounted(rows)
		} else {
			e, _, err = sn.s.scanEntry(rows)
		}
		if err != nil {
			return nil, 0, false, err
		}
		page = append(page, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, err
	}
	if by == windowed && len(page) == 0 {
		total = 0 // correct at offset 0; Page counts a page past the end
	}
	return page, total, true, nil
}

// scanCounted reads a row of entryColumns followed by the window's count.
func (sn *snapshot) scanCounted(rows pgx.Rows) (catalog.Entry, int64, error) {
	raw, fds := rows.RawValues(), rows.FieldDescriptions()
	if len(raw) != 8 || len(fds) != 8 || fds[7].Format != pgx.BinaryFormatCode || len(raw[7]) != 8 {
		return catalog.Entry{}, 0, fmt.Errorf("page row: want 8 columns with a binary count, got %d", len(raw))
	}
	e, _, err := sn.s.scanEntry(entryRow{rows})
	return e, int64(binary.BigEndian.Uint64(raw[7])), err
}

// entryRow shows scanEntry a row's first len(entryColumns) columns.
type entryRow struct{ pgx.Rows }

func (r entryRow) RawValues() [][]byte { return r.Rows.RawValues()[:7] }
func (r entryRow) FieldDescriptions() []pgconn.FieldDescription {
	return r.Rows.FieldDescriptions()[:7]
}
func (r entryRow) Scan(dest ...any) error { return r.Rows.Scan(append(dest, new(int64))...) }

// expressible says q's text can be compared in SQL as Go compares it: the
// folded keys are text (UTF-8), the text holds no NUL, and the prefix is
// valid UTF-8, so that its length in characters is where the relative
// part starts in every folded key.
func (sn *snapshot) expressible(q catalog.PageQuery) bool {
	if q.Text == "" {
		return true
	}
	return sn.s.b.utf8 && utf8.ValidString(q.Text) && strings.IndexByte(q.Text, 0) < 0 && utf8.ValidString(q.Prefix)
}

// queueChecks queues one query saying whether the SQL filters could
// differ from Go's here (some row has no folded key, or some key is
// outside the prefix), and reports whether it queued one.
func (sn *snapshot) queueChecks(batch *pgx.Batch, q catalog.PageQuery) bool {
	var checks []string
	args := []any{sn.s.id}
	if q.Text != "" {
		checks = append(checks, "EXISTS (SELECT 1 FROM syncer_objects WHERE source = $1 AND folded IS NULL)")
	}
	if q.Prefix != "" && (q.Text != "" || len(q.Groups) > 0 || len(q.ExcludeGroups) > 0) {
		lo := []byte(sn.s.order.SortKey(q.Prefix))
		args = append(args, lo)
		checks = append(checks, "EXISTS (SELECT 1 FROM syncer_objects WHERE source = $1 AND sk < $2)")
		if hi := prefixEnd(lo); hi != nil {
			args = append(args, hi)
			checks = append(checks, "EXISTS (SELECT 1 FROM syncer_objects WHERE source = $1 AND sk >= $3)")
		}
	}
	if len(checks) == 0 {
		return false
	}
	batch.Queue("SELECT "+strings.Join(checks, " OR "), args...)
	return true
}

// pageWhere is q's filter in SQL. The text: the folded key contains it
// (what the trigram index answers) and so does its relative part, which
// starts after the prefix's characters and one "/". A group: keys in the
// ranges of prefix+"/"+group+"/" and prefix+group+"/" — the keys whose
// relative part starts with group+"/", all keys being below the prefix.
func (sn *snapshot) pageWhere(q catalog.PageQuery) *pageSQL {
	w := &pageSQL{}
	w.where.WriteString("source = " + w.arg(sn.s.id))
	if sn.indexed {
		w.where.WriteString(" AND ix") // the condition of the partial indexes
	}
	if q.Text != "" {
		like, text := w.arg("%"+escapeLike(q.Text)+"%"), w.arg(q.Text)
		at := w.arg(utf8.RuneCountInString(q.Prefix)+1) + "::int"
		fmt.Fprintf(&w.where, " AND folded LIKE %s AND strpos(substr(folded, CASE WHEN substr(folded, %s, 1) = '/' THEN %s + 1 ELSE %s END), %s) > 0",
			like, at, at, at, text)
	}
	if len(q.Groups) > 0 {
		if in := sn.groupRanges(w, q.Prefix, q.Groups); in != "" {
			w.where.WriteString(" AND (" + in + ")")
		} else {
			w.where.WriteString(" AND false") // no group can be a key's
		}
	}
	if out := sn.groupRanges(w, q.Prefix, q.ExcludeGroups); out != "" {
		w.where.WriteString(" AND NOT (" + out + ")")
	}
	return w
}

// groupRanges is the SQL condition "the key's group is one of groups",
// "" when none of them can be a group (empty, or holding a "/").
func (sn *snapshot) groupRanges(w *pageSQL, prefix string, groups []string) string {
	var or []string
	for _, g := range groups {
		if g == "" || strings.Contains(g, "/") {
			continue
		}
		for _, start := range []string{prefix + "/" + g + "/", prefix + g + "/"} {
			lo := []byte(sn.s.order.SortKey(start))
			or = append(or, "sk >= "+w.arg(lo)+" AND sk < "+w.arg(prefixEnd(lo)))
		}
	}
	return strings.Join(or, " OR ")
}
