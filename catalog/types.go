// Package catalog is syncer's durable record of every object of every source,
// plus an outbox of the changes that have not been published yet.
//
// A source's objects are kept in the provider's key order, so a scan can diff
// a listing against the catalog by merging two sorted streams. Every change is
// committed together with its outbox record and a per-source sequence number,
// in one transaction: a change is either recorded and due for publishing, or
// not recorded at all.
package catalog

import (
	"fmt"
	"time"

	"github.com/imgly/syncer/providers"
)

// Entry is the recorded state of one object.
type Entry struct {
	providers.Object
	// Seq is the sequence number of the change that produced this state.
	Seq uint64 `json:"seq"`
}

// Op says what happened to an object.
type Op uint8

const (
	Added Op = iota + 1
	Modified
	Deleted
)

func (o Op) String() string {
	switch o {
	case Added:
		return "added"
	case Modified:
		return "modified"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Origin says how a change was detected.
type Origin uint8

const (
	Scan Origin = iota + 1
	Notification
)

func (o Origin) String() string {
	switch o {
	case Scan:
		return "scan"
	case Notification:
		return "notification"
	}
	return fmt.Sprintf("Origin(%d)", uint8(o))
}

// Change is one committed change, as kept in the outbox until published.
type Change struct {
	Seq    uint64
	Op     Op
	Origin Origin
	// Object is the new state; for Deleted, the last state the catalog knew.
	Object providers.Object
	// At is when the change was committed.
	At time.Time
}

// Mutation asks the catalog to make a key match what a provider reported.
// The catalog decides whether that is an addition, a modification, a deletion
// or nothing at all, so scans and notifications share one definition of a
// change.
type Mutation struct {
	Object providers.Object // the observed state; only Key matters for a delete
	Delete bool
	Origin Origin
	// Guard makes the mutation conditional on the state it was computed
	// from: it applies only when the key's current Seq equals IfSeq (0 for
	// "absent"). A scan's listing may be older than a notification committed
	// meanwhile; the guard lets the newer state win.
	Guard bool
	IfSeq uint64
	// Sequencer orders notifications of the same key (greater is newer;
	// see notify.Event). A mutation whose sequencer is older than the last
	// one applied to the key is skipped; at equal sequencers a delete wins,
	// so a late or duplicated "created" never resurrects a deleted object.
	// The last sequencer of a key is kept even after the key is deleted.
	Sequencer string
	// ListedAt, for scan mutations, is when the listing began: a key that
	// a notification changed after that is left alone, because the listing
	// may predate the change.
	ListedAt time.Time
	// EventTime, for a notification committed as it says (not completed by
	// a stat), is when the provider says the change happened. One older
	// than the key's recorded LastModified by more than staleMargin is
	// stale — a listing has seen a newer state since — and is skipped
	// rather than rolling the key back until the next notification.
	EventTime time.Time
}

// staleMargin absorbs the different precisions of event times and
// LastModified (some emulators and stores give whole seconds; HTTP dates
// are whole seconds), so that only clearly older events are skipped.
const staleMargin = 2 * time.Second

// Changed reports whether new differs from old in what subscribers care
// about: content (ETag, size) or version. Timestamps alone do not count: some
// stores rewrite them without a new object. A version counts only when both
// sides know one: Azure's Event Grid reports no version id where its listing
// does, and that must not look like a modification.
func Changed(old, new providers.Object) bool {
	return old.ETag != new.ETag || old.Size != new.Size ||
		old.Version != new.Version && old.Version != "" && new.Version != ""
}
