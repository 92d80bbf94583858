package schedule

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imgly/syncer/providers"
)

// listProbe decides whether a listing whose concurrency is the automatic
// default is worth reading in parallel ranges. Ranges hide the store's
// latency per request, and cost the client CPU: about a quarter more pages
// decoded (each range's last page runs past its end), the planning and the
// merge, and the memory of every range's read-ahead. Against a store that
// answers in a few milliseconds (a local MinIO or gofakes3; on 2 cores
// with the store on the other) the client is busy for most of a
// sequential listing already, and 8 ranges used 20–40 % more CPU and
// 12–18 MB more memory for no shorter wall time (docs/benchmarks.md).
// Against real S3 (50–300 ms a page) the client is idle for most of it,
// and ranges are what makes a huge bucket's listing fast.
//
// So the listing begins in one sequence and, once it has read minPages
// pages past its first and for at least minWall, compares the CPU time its
// process's threads ran with the wall time: below busyShare of a core, the
// client mostly waited for the store, and the listing goes on after its
// last key in ranges. Otherwise it stays one sequence. Only run time
// counts: the time threads waited in a run queue was tried as well (so that
// a starved client would not look idle), but on a loaded machine every
// wake-up of every thread waits there, and a listing 50 ms a page away
// looked busy. A starved client may therefore list in ranges, as every
// client did before the probe; so does one where the CPU time cannot be
// read.
type listProbe struct {
	minPages  int
	minWall   time.Duration
	busyShare float64
	// cpu is the CPU time the process's threads have run so far; ok false
	// where it cannot be read.
	cpu func() (d time.Duration, ok bool)
}

var defaultProbe = listProbe{minPages: 4, minWall: 250 * time.Millisecond, busyShare: 0.5, cpu: schedRun}

// errSwitch ends the probing sequence when the listing goes on in ranges.
var errSwitch = errors.New("listing goes on in ranges")

// list walks the target's listing into r.page: in ranges from the start
// for a source that asked for them, probing first for the automatic
// default, in one sequence otherwise.
func (r *reconciler) list(ctx context.Context) error {
	t := r.t
	par := providers.ParallelOptions{Concurrency: t.ListConcurrency}
	canRange := t.ListConcurrency > 1 && providers.CanStartAfter(t.Provider) && r.order == providers.ByteOrder
	if !canRange || !t.ProbeListing {
		r.ranges = canRange
		return providers.WalkParallel(ctx, t.Provider, t.Filter.Prefix, r.resumed, par, r.page)
	}
	pr := defaultProbe
	if r.opts.probe != nil {
		pr = *r.opts.probe
	}
	var (
		pages   int
		start   time.Time
		cpu0    time.Duration
		decided bool
	)
	err := providers.WalkAfter(ctx, t.Provider, t.Filter.Prefix, r.resumed, func(pg providers.Page) error {
		if err := r.page(pg); err != nil {
			return err
		}
		if decided {
			return nil
		}
		pages++
		if pages == 1 {
			// The first request pays for the connection: measured from
			// its end.
			var ok bool
			if cpu0, ok = pr.cpu(); !ok {
				decided, r.ranges = true, true
				return errSwitch
			}
			start = time.Now()
			return nil
		}
		wall := time.Since(start)
		if pages-1 < pr.minPages || wall < pr.minWall {
			return nil
		}
		decided = true
		d, ok := pr.cpu()
		if ok && float64(d-cpu0) >= pr.busyShare*float64(wall) {
			return nil // the client is busy: one sequence is as fast
		}
		r.ranges = true
		return errSwitch
	})
	if !errors.Is(err, errSwitch) {
		return err
	}
	after := r.after
	if after == "" {
		after = r.resumed
	}
	return providers.WalkParallel(ctx, t.Provider, t.Filter.Prefix, after, par, r.page)
}

// schedRun sums the time the process's threads have run on a core (Linux
// /proc schedstat, in ns).
func schedRun() (time.Duration, bool) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, false
	}
	var sum time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/schedstat")
		if err != nil {
			continue // the thread has exited
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, false
		}
		run, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += time.Duration(run)
	}
	return sum, true
}
