package assetsource

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/imgly/syncer/catalog"
)

// groupPrefixes returns the key prefixes that hold exactly the keys of the
// query's groups, in key order. A group is the first folder below the
// source's prefix (rel), so the keys of group g are those starting with
// prefix+"/"+g+"/" or with prefix+g+"/": a seek each instead of a pass over
// every key. Those prefixes never overlap (a group holds no "/"), and a
// prefix's keys are one run in the source's order (its sort keys share the
// prefix's sort key). ok is false when the catalog holds a key outside the
// source's prefix, which rel reads otherwise: then the pass answers.
func (m matcher) groupPrefixes(ctx context.Context, sn *catalog.Snapshot) (prefixes []string, ok bool, err error) {
	if m.prefix != "" {
		if ok, err := keysUnder(ctx, sn, m.prefix); err != nil || !ok {
			return nil, false, err
		}
	}
	for _, g := range m.q.Groups {
		if !strings.Contains(g, "/") { // else no key is in it
			prefixes = append(prefixes, m.prefix+"/"+g+"/", m.prefix+g+"/")
		}
	}
	slices.SortFunc(prefixes, m.order.Compare)
	return slices.Compact(prefixes), true, nil
}

// keysUnder says whether every key of the snapshot starts with prefix: its
// first and its last key do (the keys between two keys with a prefix have
// it too).
func keysUnder(ctx context.Context, sn *catalog.Snapshot, prefix string) (bool, error) {
	under := true
	check := func(e catalog.Entry) error {
		under = under && strings.HasPrefix(e.Key, prefix)
		return catalog.ErrStop
	}
	if err := sn.RangeAfter(ctx, "", nil, check); err != nil {
		return false, err
	}
	if err := sn.Walk(ctx, catalog.IndexKey, true, 0, check); err != nil {
		return false, err
	}
	return under, nil
}

// rangePrefixes calls fn for the entries under each prefix (in key order)
// that match accepts, until fn returns an error; ErrStop ends it cleanly.
func rangePrefixes(ctx context.Context, sn *catalog.Snapshot, prefixes []string, match func(key string) bool, fn func(catalog.Entry) error) error {
	stopped := false
	for _, p := range prefixes {
		err := sn.Range(ctx, p, func(e catalog.Entry) error {
			if !match(e.Key) {
				return nil
			}
			err := fn(e)
			stopped = errors.Is(err, catalog.ErrStop)
			return err
		})
		if err != nil || stopped {
			return err
		}
	}
	return nil
}
