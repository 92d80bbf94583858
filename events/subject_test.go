package events

import "testing"

func TestSubjectCovers(t *testing.T) {
	for _, tc := range []struct {
		filter, subject string
		want            bool
	}{
		{"syncer.changed.>", "syncer.changed.>", true},
		{"syncer.>", "syncer.changed.>", true},
		{">", "syncer.changed.>", true},
		{"*.changed.>", "syncer.changed.>", true},
		{"syncer.changed.*", "syncer.changed.>", false},
		{"syncer.changed", "syncer.changed.>", false},
		{"syncer.changed.a", "syncer.changed.>", false},
		{"other.>", "syncer.changed.>", false},
		{"syncer.changed.>", "syncer.>", false},
		{"syncer.changed.>", "syncer.changed", false},
		{"a.b", "a.b", true},
	} {
		if got := subjectCovers(tc.filter, tc.subject); got != tc.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", tc.filter, tc.subject, got, tc.want)
		}
	}
}
