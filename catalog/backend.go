package catalog

import (
	"context"
	"errors"
	"time"
	"unsafe"

	"github.com/imgly/syncer/providers"
)

// Backend is a catalog's storage engine: the embedded bbolt file (Open) or
// a shared PostgreSQL database (catalog/pgcatalog). The rest of syncer sees
// only Catalog, Source and Snapshot, which wrap one; catalog/catalogtest is
// the suite every backend passes.
type Backend interface {
	// InstanceID is a random id fixed when the catalog was created.
	InstanceID() string
	// Sources lists the ids of the sources the catalog holds.
	Sources(ctx context.Context) ([]string, error)
	// Source is the handle of one source, whose keys sort in order; indexed
	// keeps the asset API's secondary indexes in its commits.
	Source(id string, order providers.Order, indexed bool) SourceBackend
	// RecordedOrder reads the key order recorded for source id (ok false:
	// none), without writing.
	RecordedOrder(ctx context.Context, id string) (o providers.Order, ok bool, err error)
	Close() error
}

// SourceBackend is one source's part of a Backend. Each method's contract
// is on the Source method of the same name.
type SourceBackend interface {
	Range(ctx context.Context, after string, fn func(Entry) error) error
	Get(ctx context.Context, key string) (Entry, bool, error)
	Stats(ctx context.Context) (Stats, error)
	// Commit applies muts (at least one) in one transaction: for each, it
	// reads the key's entry and marker, asks Decide, and writes the
	// outcome, numbering changes with the next sequence numbers. now is the
	// commit time.
	Commit(ctx context.Context, muts []Mutation, now time.Time) ([]Change, error)
	Wait() <-chan struct{}
	Outbox(ctx context.Context, from uint64, limit int) ([]Change, error)
	Ack(ctx context.Context, through uint64) error
	LastSeq(ctx context.Context) (uint64, error)
	// View calls fn with a consistent snapshot (made with NewSnapshot).
	View(ctx context.Context, fn func(*Snapshot) error) error
	ListingState(ctx context.Context) (ListingState, error)
	SetListingProgress(ctx context.Context, after string) error
	SetListingComplete(ctx context.Context) error
	// RecordOrder records the source's key order unless one is recorded,
	// atomically, and returns the one that was (had: whether there was).
	RecordOrder(ctx context.Context) (stored providers.Order, had bool, err error)
}

// SnapshotReader reads one source at one point in time; see Snapshot.
type SnapshotReader interface {
	Get(key string) (Entry, bool, error)
	Range(ctx context.Context, prefix string, fn func(Entry) error) error
	RangeMatch(ctx context.Context, match func(key []byte) bool, fn func(Entry) error) error
	Indexed() bool
	Walk(ctx context.Context, ix Index, desc bool, skip int, fn func(Entry) error) error
	// RangeAfter is RangeMatch from strictly after key ("": the start),
	// match nil for every entry: a keyset cursor's page.
	RangeAfter(ctx context.Context, key string, match func(key []byte) bool, fn func(Entry) error) error
}

// Searcher is a SnapshotReader that answers Snapshot.Search with its own
// means (bbolt: packed search blocks; PostgreSQL: a trigram index). It
// reports handled false when it has none for this snapshot, and Search
// falls back to a pass over every key.
type Searcher interface {
	Search(ctx context.Context, text string, match func(key []byte) bool, fn func(Entry) error) (handled bool, err error)
}

// Catalog is syncer's catalog, on whichever backend holds it.
type Catalog struct {
	b   Backend
	now func() time.Time
}

// New returns the catalog kept by b.
func New(b Backend) *Catalog { return &Catalog{b: b, now: time.Now} }

// InstanceID is a random id fixed when the catalog was created. Event ids
// include it, so that a catalog recreated from scratch — whose sequence
// numbers start again at 1 — never reuses an id the bus still remembers.
func (c *Catalog) InstanceID() string { return c.b.InstanceID() }

// Close closes the catalog.
func (c *Catalog) Close() error { return c.b.Close() }

// Sources lists the ids of the sources the catalog holds.
func (c *Catalog) Sources() ([]string, error) { return c.b.Sources(context.Background()) }

// Source returns the handle of one source. order must be the order the
// source's provider lists in; it fixes how keys are laid out.
func (c *Catalog) Source(id string, order providers.Order) *Source {
	return &Source{c: c, id: id, order: order, b: c.b.Source(id, order, false)}
}

// Source is one source's part of the catalog.
type Source struct {
	c       *Catalog
	b       SourceBackend
	id      string
	order   providers.Order
	indexed bool
	fence   *Fence // kept through Indexed
}

// Indexed returns s keeping the asset API's secondary indexes (newest
// first, by name, by size) in every commit. They make a sorted page of a
// huge source a cursor walk instead of a pass over every object. In bbolt
// each insert lands at a random place in three more trees, so a first
// import defers them and builds them at its end (DeferIndexes,
// BuildIndexes); the commits after it maintain them. A source opened
// without them drops any it has, so an index is never stale.
func (s *Source) Indexed(on bool) *Source {
	c := *s
	c.indexed = on
	c.b = s.c.b.Source(s.id, s.order, on)
	if s.fence != nil {
		return c.Fenced(*s.fence)
	}
	return &c
}

// ID is the source id.
func (s *Source) ID() string { return s.id }

// Range calls fn for each entry whose key comes after `after` in the
// source's order ("" for the start), in that order, until fn returns an error.
// ErrStop ends the range cleanly. fn must not call back into the catalog.
func (s *Source) Range(ctx context.Context, after string, fn func(Entry) error) error {
	return s.b.Range(ctx, after, fn)
}

// Get returns the entry of key, and whether it exists.
func (s *Source) Get(ctx context.Context, key string) (Entry, bool, error) {
	return s.b.Get(ctx, key)
}

// Stats returns the source's counters.
func (s *Source) Stats(ctx context.Context) (Stats, error) { return s.b.Stats(ctx) }

// Commit applies muts in order and appends one outbox record per resulting
// change, numbered with the source's next sequence numbers. Mutations that
// change nothing, or whose guard fails, are skipped (see Decide). It returns
// the changes it committed. A batch of notifications is one transaction; a
// scan's batch may be several, so that notification commits waiting for the
// writer go in between (a failure then keeps the transactions before it).
func (s *Source) Commit(ctx context.Context, muts []Mutation) ([]Change, error) {
	if len(muts) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.b.Commit(ctx, muts, s.c.now().UTC())
}

// Wait returns a channel that receives after a commit adds outbox records.
// One waiter per source: the source's publisher. A receive is a hint to
// read the outbox, not a promise that it holds anything.
func (s *Source) Wait() <-chan struct{} { return s.b.Wait() }

// Outbox returns up to limit unpublished changes with Seq >= from, in order.
func (s *Source) Outbox(ctx context.Context, from uint64, limit int) ([]Change, error) {
	return s.b.Outbox(ctx, from, limit)
}

// Ack removes the changes with Seq <= through from the outbox: they have
// been published.
func (s *Source) Ack(ctx context.Context, through uint64) error { return s.b.Ack(ctx, through) }

// LastSeq returns the sequence number of the source's latest change, 0 if
// it has none.
func (s *Source) LastSeq(ctx context.Context) (uint64, error) { return s.b.LastSeq(ctx) }

// View calls fn with a consistent snapshot of the source; the snapshot is
// valid only during fn, and fn must not write to the catalog.
func (s *Source) View(ctx context.Context, fn func(*Snapshot) error) error { return s.b.View(ctx, fn) }

// ListingState returns what the catalog records of the source's listings.
func (s *Source) ListingState(ctx context.Context) (ListingState, error) {
	return s.b.ListingState(ctx)
}

// SetListingProgress records that a first listing has committed every key
// up to and including after ("": it has begun), so that a restart resumes
// it there instead of listing a huge first import from the start again.
func (s *Source) SetListingProgress(ctx context.Context, after string) error {
	return s.b.SetListingProgress(ctx, after)
}

// SetListingComplete records that a listing of the source reached its end
// and forgets a first listing's progress. It writes only when that changes
// something, so that rescans write nothing.
func (s *Source) SetListingComplete(ctx context.Context) error { return s.b.SetListingComplete(ctx) }

// Snapshot is a consistent read of one source: its sequence number, its
// count and its entries, all from one read transaction. A query answered
// from a Snapshot reflects exactly the changes through Seq — what lets an
// API answer carry the sequence it reflects (see the asset API).
type Snapshot struct {
	r SnapshotReader
	// Seq is the sequence number of the last change the snapshot holds.
	Seq uint64
	// Count is the number of objects the snapshot holds.
	Count uint64
}

// NewSnapshot is how a backend hands its reader to View's fn.
func NewSnapshot(seq, count uint64, r SnapshotReader) *Snapshot {
	return &Snapshot{r: r, Seq: seq, Count: count}
}

// Get returns the entry of key, and whether it exists.
func (sn *Snapshot) Get(key string) (Entry, bool, error) { return sn.r.Get(key) }

// Range calls fn for each entry whose key starts with prefix, in the
// source's key order, until fn returns an error; ErrStop ends it cleanly.
// The entry passed to fn may be kept.
func (sn *Snapshot) Range(ctx context.Context, prefix string, fn func(Entry) error) error {
	return sn.r.Range(ctx, prefix, fn)
}

// RangeMatch is Range for a filter on keys: match sees each key (as bytes,
// valid only during the call) and only the entries it accepts are decoded
// and passed to fn, in key order.
func (sn *Snapshot) RangeMatch(ctx context.Context, match func(key []byte) bool, fn func(Entry) error) error {
	return sn.r.RangeMatch(ctx, match, fn)
}

// RangeAfter calls fn for each entry whose key comes strictly after key in
// the source's key order (from the first entry when key is ""), skipping
// those match rejects (nil: every entry), until fn returns an error; ErrStop
// ends it cleanly. It is what a keyset cursor pages with: a page costs a seek
// and its own entries, wherever it starts.
func (sn *Snapshot) RangeAfter(ctx context.Context, key string, match func(key []byte) bool, fn func(Entry) error) error {
	return sn.r.RangeAfter(ctx, key, match, fn)
}

// Search is RangeMatch for the entries whose key, folded (Fold), contains
// text (already folded; "" matches every key), that match (nil: every
// one) also accepts, in key order. A backend with an index for it (a
// Searcher) reads only the hits; otherwise it is one pass over the keys.
func (sn *Snapshot) Search(ctx context.Context, text string, match func(key []byte) bool, fn func(Entry) error) error {
	if s, ok := sn.r.(Searcher); ok && text != "" {
		if handled, err := s.Search(ctx, text, match, fn); handled || err != nil {
			return err
		}
	}
	return sn.r.RangeMatch(ctx, func(key []byte) bool {
		return ContainsFold(unsafe.String(unsafe.SliceData(key), len(key)), text) && (match == nil || match(key))
	}, fn)
}

// Indexed says the snapshot's source has its secondary indexes, so Walk
// may use IndexLastModified, IndexName and IndexSize.
func (sn *Snapshot) Indexed() bool { return sn.r.Indexed() }

// Walk calls fn for the entries in the order of ix (ties by key; desc
// reverses the whole order), after skipping the first skip, until fn
// returns an error; ErrStop ends it cleanly.
func (sn *Snapshot) Walk(ctx context.Context, ix Index, desc bool, skip int, fn func(Entry) error) error {
	return sn.r.Walk(ctx, ix, desc, skip, fn)
}

// BackendOf returns the backend under c, for wrappers (tests, tools).
func BackendOf(c *Catalog) Backend { return c.b }

// ErrFenced is returned (wrapped) by a fenced source's Commit or Ack when
// its fence is no longer the source's lease: another replica owns the
// source now, and this one must stop writing for it.
var ErrFenced = errors.New("fenced: this replica no longer holds the source's lease")

// Fence is a replica's claim on a source: its id and its lease's token.
type Fence struct {
	Owner string
	Token uint64
}

// Fencer is a SourceBackend that can check a Fence inside each commit's
// transaction (PostgreSQL, shared by replicas).
type Fencer interface {
	Fenced(Fence) SourceBackend
}

// Fenced returns s committing and acknowledging only while f holds: each
// Commit and Ack checks it in its own transaction and fails with
// ErrFenced otherwise. A backend with one process per catalog (bbolt: its
// file lock already excludes every other) returns s as it is.
func (s *Source) Fenced(f Fence) *Source {
	fb, ok := s.b.(Fencer)
	if !ok {
		return s
	}
	c := *s
	c.b = fb.Fenced(f)
	c.fence = &f
	return &c
}

// PageQuery asks for one page of a source's entries, filtered and sorted
// as the asset API's findAssets asks, for a backend that can answer it
// whole (a Pager) instead of handing every match to the caller.
//
// A key's relative part is the key without Prefix and then without one
// leading "/"; its group is the relative part up to its first "/" (none
// for a file at the top).
type PageQuery struct {
	Prefix string
	// Text, already folded (Fold): the relative part, folded, contains it
	// ("" matches every key).
	Text string
	// Groups: the key's group is one of them (nil: any key, a file at the
	// top too). ExcludeGroups: its group is none of them.
	Groups, ExcludeGroups []string
	// Sort is the order (IndexKey, IndexLastModified, IndexName,
	// IndexSize), ties by key; Desc reverses the whole order.
	Sort Index
	Desc bool
	// Offset entries are skipped, then at most Limit returned.
	Offset, Limit int
}

// Pager is a SnapshotReader that answers a PageQuery in its own engine
// (PostgreSQL: one SQL page and a count), returning the page and the
// number of entries that match in all. It reports handled false when it
// cannot answer q exactly, and the caller takes its own path.
type Pager interface {
	Page(ctx context.Context, q PageQuery) (page []Entry, total int, handled bool, err error)
}

// Page answers q from the snapshot when its backend is a Pager that can;
// handled false otherwise (the caller filters and sorts itself).
func (sn *Snapshot) Page(ctx context.Context, q PageQuery) (page []Entry, total int, handled bool, err error) {
	p, ok := sn.r.(Pager)
	if !ok {
		return nil, 0, false, nil
	}
	return p.Page(ctx, q)
}
