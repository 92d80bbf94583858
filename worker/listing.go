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
