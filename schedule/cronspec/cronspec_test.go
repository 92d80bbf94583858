package cronspec_test

import (
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/schedule/cronspec"
)

// Parse honours sub-second and fractional intervals exactly, keeps
// whole-second intervals and cron specs as robfig/cron runs them, and
// refuses intervals under the floor.
func TestParse(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 0, 0, 300_000_000, time.UTC) // 06:00:00.3
	for _, tc := range []struct {
		spec string
		next time.Time
	}{
		{"@every 250ms", at.Add(250 * time.Millisecond)},
		{"@every 100ms", at.Add(100 * time.Millisecond)},
		{"@every 1500ms", at.Add(1500 * time.Millisecond)},
		{"@every 2.5s", at.Add(2500 * time.Millisecond)},
		// Whole seconds: on the second, as before.
		{"@every 1s", time.Date(2026, 12, 2, 6, 0, 1, 0, time.UTC)},
		{"@every 5m", time.Date(2026, 12, 2, 6, 5, 0, 0, time.UTC)},
		{"@every 1h30m", time.Date(2026, 12, 2, 7, 30, 0, 0, time.UTC)},
		{"CRON_TZ=UTC @every 250ms", at.Add(250 * time.Millisecond)},
		{"*/10 * * * *", time.Date(2026, 12, 2, 6, 10, 0, 0, time.UTC)},
		{"CRON_TZ=UTC 30 6 * * *", time.Date(2026, 12, 2, 6, 30, 0, 0, time.UTC)},
		{"@hourly", time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)},
	} {
		s, err := cronspec.Parse(tc.spec)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if got := s.Next(at).In(time.UTC); !got.Equal(tc.next) {
			t.Errorf("%q: next after %s is %s, want %s", tc.spec, at.Format(time.StampMilli), got.Format(time.StampMilli), tc.next.Format(time.StampMilli))
		}
	}
	for _, tc := range []struct{ spec, want string }{
		{"@every 99ms", "shorter than the minimum of 100ms"},
		{"@every 0s", "shorter than the minimum"},
		{"@every -1s", "shorter than the minimum"},
		{"@every soon", "duration"},
		{"every five minutes", ""},
		{"61 * * * *", ""},
		{"", "empty"},
		{"TZ=UTC", "time zone"},
	} {
		_, err := cronspec.Parse(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.spec, err, tc.want)
		}
	}
}
