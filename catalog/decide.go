package catalog

import "time"

// Marker is the last notification applied to a key: its sequencer, whether
// it was a delete, and when it was applied. It outlives the key, so that a
// late "created" never resurrects a deleted object.
type Marker struct {
	Seq    string
	Delete bool
	At     time.Time
}

// Skip says why a mutation changed nothing.
type Skip uint8

const (
	Applied       Skip = iota // not skipped: Decision.Op says what changed
	SkipGuard                 // Guard set and the key's Seq is not IfSeq
	SkipStale                 // EventTime older than the recorded LastModified
	SkipListedAt              // a notification touched the key after the listing began
	SkipSequencer             // the sequencer is not newer than the key's marker
	SkipAbsent                // a delete of a key the catalog does not hold
	SkipUnchanged             // the observed state is the recorded one
)

func (s Skip) String() string {
	return [...]string{"applied", "guard", "stale", "listed-at", "sequencer", "absent", "unchanged"}[s]
}

// Decision is what one mutation does to one key, decided by Decide from the
// key's current state alone. Every backend commits through it, so that the
// guards and the sequencer rules have one definition.
type Decision struct {
	// Op is the change (0 when Skip is set); Change is its outbox record,
	// without a sequence number, which the backend assigns.
	Op     Op
	Change Change
	Skip   Skip
	// PutMarker: Marker must be stored for the key. It is set for every
	// notification that passed the sequencer check, even one that changes
	// nothing, so that ListedAt protects the key from an older listing.
	PutMarker bool
	Marker    Marker
}

// Decide decides mutation m against the key's current entry (exists false:
// absent) and its marker (marked false: none, or unreadable), committing at
// now. It is pure: the backend reads the inputs and writes the outcome in
// one transaction.
func Decide(m *Mutation, cur Entry, exists bool, mk Marker, marked bool, now time.Time) Decision {
	if !exists {
		cur = Entry{}
	}
	if !marked {
		mk = Marker{}
	}
	if m.Guard && cur.Seq != m.IfSeq {
		return Decision{Skip: SkipGuard}
	}
	if exists && !m.EventTime.IsZero() && cur.LastModified.Sub(m.EventTime) > staleMargin {
		return Decision{Skip: SkipStale}
	}
	if marked && !m.ListedAt.IsZero() && mk.At.After(m.ListedAt) {
		return Decision{Skip: SkipListedAt}
	}
	var d Decision
	if m.Notified() {
		if m.Sequencer != "" {
			if marked && !newer(m.Sequencer, m.Delete, marker{seq: mk.Seq, delete: mk.Delete}) {
				return Decision{Skip: SkipSequencer}
			}
			mk.Seq, mk.Delete = m.Sequencer, m.Delete
		}
		// An unsequenced notification is applied as it comes and keeps the
		// key's last sequencer, but it still stamps the key.
		d.PutMarker, d.Marker = true, Marker{Seq: mk.Seq, Delete: mk.Delete, At: now}
	}
	d.Change = Change{Origin: m.Origin, Object: m.Object, At: now}
	switch {
	case m.Delete && !exists:
		d.Skip = SkipAbsent
	case m.Delete:
		d.Op, d.Change.Object = Deleted, cur.Object
	case !exists:
		d.Op = Added
	case Changed(cur.Object, m.Object):
		d.Op = Modified
	default:
		d.Skip = SkipUnchanged
	}
	d.Change.Op = d.Op
	if d.Skip != Applied {
		d.Change = Change{}
	}
	return d
}

// Notified says the mutation comes from a notification: it carries a
// sequencer or a notification origin, and so reads and stamps the key's
// marker.
func (m *Mutation) Notified() bool { return m.Sequencer != "" || m.Origin == Notification }

// NeedsMarker says whether Decide looks at the key's marker for m; a
// backend can skip reading it otherwise (most scan mutations).
func (m *Mutation) NeedsMarker() bool { return m.Notified() || !m.ListedAt.IsZero() }

// exported converts a stored marker.
func (mk marker) exported() Marker { return Marker{Seq: mk.seq, Delete: mk.delete, At: mk.at} }
