package worker

import (
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers"
)

// ListConcurrency is the number of key ranges a scan of src, of kind d,
// lists at once: its listConcurrency, or when unset
// providers.DefaultListConcurrency for a kind that lists ranges, one for
// the others (a local tree is read once per scan by one walker; Azure
// cannot start a listing after a key).
func ListConcurrency(src config.Source, d providers.Descriptor) int {
	switch {
	case src.ListConcurrency > 0:
		return src.ListConcurrency
	case d.ListsRanges:
		return providers.DefaultListConcurrency
	}
	return 1
}

// kindOf is src's kind (a zero Descriptor for a kind the registry lacks,
// which opening the source already refused).
func (w *Worker) kindOf(src config.Source) providers.Descriptor {
	d, _ := w.opts.Kinds.Lookup(src.Provider)
	return d
}

func (w *Worker) listConcurrency(src config.Source) int { return ListConcurrency(src, w.kindOf(src)) }

// probeListing says whether a scan of src lists in ranges only once a probe
// found the store's latency bounds the listing (schedule.Target.ProbeListing),
// rather than from its start. Ranges cost the client CPU that a process
// applying notifications needs for their commits: with eight ranges against
// a store beside the client, webhook commits during a first import had a p99
// of 112–223 ms against 41–61 ms in one sequence (docs/benchmarks.md). Where
// the store is far away (real S3, 50–300 ms a page) the client mostly waits,
// the probe finds so, and the listing goes on in ranges. A process without
// notifications (`syncer scan`, a poll-only worker) has no one to leave the
// CPU to and lists in ranges from the start; so does a source that sets
// listConcurrency.
func (w *Worker) probeListing(src config.Source) bool {
	return src.ListConcurrency == 0 && len(w.notifiers) > 0
}
