package schedule

import (
	"context"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// aheadChunk is how many entries one read of the read-ahead takes: a whole
// number of the PostgreSQL backend's doubling query chunks (1,024 + 2,048
// + 4,096), so that a read ends exactly at a query's end and no row is sent
// that is not handed over. Two or three chunks are held at once: a few MB.
const aheadChunk = 7 * 1024

// readAhead reads a source's catalog entries in key order on a goroutine of
// its own, a chunk ahead of the merge, so that a page's merge rarely waits
// for a catalog round trip and the catalog is read in a few large reads
// instead of one per listing page (on PostgreSQL each a query, each
// re-reading the rows after the page's last key that the previous one
// already sent).
//
// Each chunk is a Range of its own that returns before the chunk is handed
// over, so no catalog transaction stays open while the merge works (bbolt's
// commits would wait for such a reader to grow the file).
//
// The entries are of the catalog as it was when their chunk was read. That
// is earlier than a per-page read would see it, which the mutations' guards
// already allow for: a scan's upsert or delete carries the seq it was
// decided from and is skipped if the key changed since. What the earlier
// read must not do is show the merge entries that this scan's own commits
// wrote behind it; the merge skips every entry at or before the last key it
// has merged (see next).
type readAhead struct {
	order  providers.Order
	ctx    context.Context // the reader's
	chunks chan aheadResult
	cancel context.CancelFunc
	done   chan struct{}
	buf    []catalog.Entry
	end    bool // the last chunk is in buf
	err    error
}

type aheadResult struct {
	entries []catalog.Entry
	err     error
	last    bool
}

// startReadAhead reads cat's entries after `after`, chunk (aheadChunk but
// in tests) at a time.
func startReadAhead(ctx context.Context, cat Catalog, order providers.Order, after string, chunk int) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	a := &readAhead{order: order, ctx: ctx, chunks: make(chan aheadResult, 1), cancel: cancel, done: make(chan struct{})}
	go a.run(ctx, cat, after, chunk)
	return a
}

func (a *readAhead) run(ctx context.Context, cat Catalog, after string, chunk int) {
	defer close(a.done)
	for {
		entries := make([]catalog.Entry, 0, chunk)
		err := cat.Range(ctx, after, func(e catalog.Entry) error {
			entries = append(entries, e)
			if len(entries) == chunk {
				return catalog.ErrStop
			}
			return nil
		})
		last := err != nil || len(entries) < chunk
		select {
		case a.chunks <- aheadResult{entries: entries, err: err, last: last}:
		case <-ctx.Done():
			return
		}
		if last {
			return
		}
		after = entries[len(entries)-1].Key
	}
}

// next returns the first entry after `merged` (the last key the merge has
// finished with; "" for none) without consuming it; ok is false at the end
// of the catalog. Entries at or before merged are dropped: such an entry
// was written after the merge passed its key (by this scan's committer or
// a notification), and a per-page read would not have seen it either.
func (a *readAhead) next(merged string) (e catalog.Entry, ok bool, err error) {
	for {
		for len(a.buf) > 0 {
			if merged != "" && a.order.Compare(a.buf[0].Key, merged) <= 0 {
				a.buf = a.buf[1:]
				continue
			}
			return a.buf[0], true, nil
		}
		if a.err != nil || a.end {
			return catalog.Entry{}, false, a.err
		}
		var r aheadResult
		select {
		case r = <-a.chunks:
		case <-a.done:
			// The reader stopped. Its last chunk may still be buffered;
			// if not, its context ended before it could hand one over
			// (a cancelled scan), and waiting would never end.
			select {
			case r = <-a.chunks:
			default:
				r = aheadResult{err: a.ctx.Err(), last: true}
			}
		}
		a.buf, a.err, a.end = r.entries, r.err, r.last
	}
}

// pop consumes the entry next returned.
func (a *readAhead) pop() { a.buf = a.buf[1:] }

// close stops the reading and waits for it.
func (a *readAhead) close() {
	a.cancel()
	<-a.done
}
