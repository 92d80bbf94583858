// Package cronspec parses a source's scan schedule: robfig/cron/v3's
// standard specs, and "@every" intervals kept exactly, below a second too.
// It is a leaf so that the configuration's validation and the scheduler
// parse with the same function without one importing the other.
package cronspec

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinInterval is the shortest "@every" interval a schedule may have. At
// 100 ms a one-page bucket already costs 864,000 LIST requests a day, and a
// store's LIST round trip (tens of milliseconds on S3) plus the catalog diff
// takes a good part of the interval, so a shorter one would mostly skip
// ticks; an editor that needs changes faster than a 100 ms poll gives
// needs notifications, not a faster scan.
const MinInterval = 100 * time.Millisecond

// Every is a schedule that runs a fixed interval after the previous run
// fired. robfig/cron's own "@every" (cron.ConstantDelaySchedule) truncates
// the interval to whole seconds and raises it to at least one second, so
// intervals that are not whole seconds use this one.
type Every time.Duration

// Next returns t plus the interval.
func (e Every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// Parse parses a source's schedule: a standard cron spec ("*/10 * * * *",
// "@hourly", optionally with a CRON_TZ= prefix) or "@every <Go duration>" of
// at least MinInterval. Whole-second intervals run as robfig/cron runs them,
// on the second; any other interval is honoured exactly (Every). The
// configuration's validation and the scheduler both parse with it, so what
// validates is what runs.
func Parse(spec string) (cron.Schedule, error) {
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		// robfig/cron slices up to the space after the zone and would panic.
		return nil, errors.New("a time zone without a schedule after it")
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, err
	}
	if _, ok := sched.(cron.ConstantDelaySchedule); !ok {
		return sched, nil
	}
	// cron accepted "@every <duration>" (after an optional time zone, which
	// an interval ignores) and has already rounded the duration: read it
	// again, unrounded.
	const every = "@every "
	i := strings.LastIndex(spec, every)
	if i < 0 {
		return nil, fmt.Errorf("cannot find %q in a constant-delay schedule", every)
	}
	d, err := time.ParseDuration(spec[i+len(every):])
	if err != nil {
		return nil, fmt.Errorf("interval: %w", err)
	}
	if d < MinInterval {
		// The spec is not repeated: the caller quotes it, or names the
		// variable it came from.
		return nil, fmt.Errorf("the interval is shorter than the minimum of %v", MinInterval)
	}
	if d%time.Second == 0 {
		return cron.Every(d), nil
	}
	return Every(d), nil
}
