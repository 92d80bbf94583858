package catalog

import (
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t0 := now.Add(-time.Hour)
	obj := func(etag string) providers.Object {
		return providers.Object{Key: "k", ETag: etag, Size: 1, LastModified: t0}
	}
	cur := Entry{Object: obj("a"), Seq: 7}
	up := func(etag string) Mutation { return Mutation{Object: obj(etag), Origin: Scan} }
	note := func(etag, sq string, del bool) Mutation {
		return Mutation{Object: obj(etag), Origin: Notification, Sequencer: sq, Delete: del}
	}
	with := func(m Mutation, f func(*Mutation)) Mutation { f(&m); return m }
	mk := func(sq string, del bool, at time.Time) Marker { return Marker{Seq: sq, Delete: del, At: at} }

	cases := []struct {
		name   string
		m      Mutation
		exists bool
		mk     Marker
		marked bool
		op     Op
		skip   Skip
		marker *Marker // the marker to store, nil: none
	}{
		{name: "add absent", m: up("a"), op: Added},
		{name: "modify", m: up("b"), exists: true, op: Modified},
		{name: "unchanged", m: up("a"), exists: true, skip: SkipUnchanged},
		{name: "version only on one side is no change", m: with(up("a"), func(m *Mutation) { m.Object.Version = "v1" }), exists: true, skip: SkipUnchanged},
		{name: "delete", m: Mutation{Object: providers.Object{Key: "k"}, Delete: true, Origin: Scan}, exists: true, op: Deleted},
		{name: "delete absent", m: Mutation{Object: providers.Object{Key: "k"}, Delete: true, Origin: Scan}, skip: SkipAbsent},
		{name: "guard matches", m: with(up("b"), func(m *Mutation) { m.Guard, m.IfSeq = true, 7 }), exists: true, op: Modified},
		{name: "guard differs", m: with(up("b"), func(m *Mutation) { m.Guard, m.IfSeq = true, 6 }), exists: true, skip: SkipGuard},
		{name: "guard absent matches 0", m: with(up("b"), func(m *Mutation) { m.Guard = true }), op: Added},
		{name: "guard absent differs", m: with(up("b"), func(m *Mutation) { m.Guard, m.IfSeq = true, 7 }), skip: SkipGuard},
		{name: "stale event", m: with(note("b", "", false), func(m *Mutation) { m.EventTime = t0.Add(-3 * time.Second) }), exists: true, skip: SkipStale},
		{name: "event within the margin", m: with(note("b", "", false), func(m *Mutation) { m.EventTime = t0.Add(-time.Second) }), exists: true, op: Modified, marker: &Marker{At: now}},
		{name: "stale event on absent key applies", m: with(note("b", "", false), func(m *Mutation) { m.EventTime = t0.Add(-time.Hour) }), op: Added, marker: &Marker{At: now}},
		{name: "listing older than marker", m: with(up("b"), func(m *Mutation) { m.ListedAt = t0 }), exists: true, mk: mk("", false, t0.Add(time.Second)), marked: true, skip: SkipListedAt},
		{name: "listing newer than marker", m: with(up("b"), func(m *Mutation) { m.ListedAt = t0.Add(time.Second) }), exists: true, mk: mk("", false, t0), marked: true, op: Modified},
		{name: "listing at the marker's instant", m: with(up("b"), func(m *Mutation) { m.ListedAt = t0 }), exists: true, mk: mk("", false, t0), marked: true, op: Modified},
		{name: "listing without marker", m: with(up("b"), func(m *Mutation) { m.ListedAt = t0 }), exists: true, op: Modified},
		{name: "unreadable marker counts as none", m: with(up("b"), func(m *Mutation) { m.ListedAt = t0 }), exists: true, mk: mk("9", true, now), op: Modified},
		{name: "sequencer first", m: note("b", "5", false), exists: true, op: Modified, marker: &Marker{Seq: "5", At: now}},
		{name: "sequencer newer", m: note("b", "6", false), exists: true, mk: mk("5", false, t0), marked: true, op: Modified, marker: &Marker{Seq: "6", At: now}},
		{name: "sequencer older", m: note("b", "4", false), exists: true, mk: mk("5", false, t0), marked: true, skip: SkipSequencer},
		{name: "sequencer equal upsert", m: note("b", "5", false), exists: true, mk: mk("5", false, t0), marked: true, skip: SkipSequencer},
		{name: "delete wins at equal sequencer", m: note("", "5", true), exists: true, mk: mk("5", false, t0), marked: true, op: Deleted, marker: &Marker{Seq: "5", Delete: true, At: now}},
		{name: "upsert loses to delete at equal", m: note("b", "5", false), mk: mk("5", true, t0), marked: true, skip: SkipSequencer},
		{name: "duplicate delete", m: note("", "5", true), mk: mk("5", true, t0), marked: true, skip: SkipSequencer},
		{name: "newer create after delete resurrects", m: note("b", "6", false), mk: mk("5", true, t0), marked: true, op: Added, marker: &Marker{Seq: "6", At: now}},
		{name: "sequenced delete of absent key stamps marker", m: note("", "5", true), skip: SkipAbsent, marker: &Marker{Seq: "5", Delete: true, At: now}},
		{name: "sequenced no-change stamps marker", m: note("a", "6", false), exists: true, mk: mk("5", false, t0), marked: true, skip: SkipUnchanged, marker: &Marker{Seq: "6", At: now}},
		{name: "unsequenced notification keeps sequencer", m: note("b", "", false), exists: true, mk: mk("5", true, t0), marked: true, op: Modified, marker: &Marker{Seq: "5", Delete: true, At: now}},
		{name: "scan with sequencer is a notification", m: with(up("b"), func(m *Mutation) { m.Sequencer = "1" }), exists: true, op: Modified, marker: &Marker{Seq: "1", At: now}},
		{name: "scan ignores marker without ListedAt", m: up("b"), exists: true, mk: mk("9", true, now), marked: true, op: Modified},
		{name: "settling guard after a notification", m: with(up("b"), func(m *Mutation) { m.Guard, m.IfSeq, m.ListedAt = true, 7, t0 }), exists: true, mk: mk("", false, now), marked: true, skip: SkipListedAt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(&tc.m, cur, tc.exists, tc.mk, tc.marked, now)
			if d.Op != tc.op || d.Skip != tc.skip {
				t.Fatalf("op %v skip %v, want op %v skip %v", d.Op, d.Skip, tc.op, tc.skip)
			}
			if d.PutMarker != (tc.marker != nil) {
				t.Fatalf("PutMarker %v, want %v", d.PutMarker, tc.marker != nil)
			}
			if tc.marker != nil && d.Marker != *tc.marker {
				t.Errorf("marker %+v, want %+v", d.Marker, *tc.marker)
			}
			if tc.op == 0 {
				if d.Change != (Change{}) {
					t.Errorf("skipped mutation carries change %+v", d.Change)
				}
				return
			}
			want := tc.m.Object
			if tc.op == Deleted {
				want = cur.Object
			}
			if d.Change.Object != want || d.Change.Origin != tc.m.Origin || !d.Change.At.Equal(now) {
				t.Errorf("change %+v, want object %+v at %v", d.Change, want, now)
			}
		})
	}
}
