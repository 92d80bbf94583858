package providertest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/imgly/syncer/providers"
)

// RunPrefix is the run of the listing cases with a non-empty prefix: each
// case's store lives below RunPrefix in a bucket that also holds the
// Decoys, keys beside the prefix that must never be listed.
const RunPrefix = "run/"

// Decoys are keys outside RunPrefix, on both sides of it in either order and
// sharing its first letters, put into every prefixed store. None is a
// directory of a key below the prefix, so a local directory can hold them.
var Decoys = []string{"a/run/x.txt", "ru", "run.txt", "run-/x", "run0/x", "runa/b", "ruN/x", "rum/z", "z/run/y"}

// prefixed is a Harness whose stores are the stores of h seen through
// RunPrefix: keys are put below it, and its provider lists and stats below
// it and hands out keys without it.
type prefixed struct{ h Harness }

func (ph prefixed) New(t *testing.T, pageSize int) Store {
	s := ph.h.New(t, pageSize)
	for _, k := range Decoys {
		s.Put(t, k, []byte("decoy"), "")
	}
	return prefixedStore{s: s, p: newPrefixedProvider(s.Provider(), RunPrefix)}
}

// ReadsAhead passes h's on.
func (ph prefixed) ReadsAhead() string {
	if rh, ok := ph.h.(ReadAheadHarness); ok {
		return rh.ReadsAhead()
	}
	return ""
}

type prefixedStore struct {
	s Store
	p providers.Provider
}

func (s prefixedStore) Provider() providers.Provider { return s.p }
func (s prefixedStore) Put(t *testing.T, key string, body []byte, ct string) {
	s.s.Put(t, RunPrefix+key, body, ct)
}
func (s prefixedStore) Delete(t *testing.T, key string) { s.s.Delete(t, RunPrefix+key) }

// newPrefixedProvider keeps StartAfterLister when p has it, so that the
// StartAfter case runs prefixed too.
func newPrefixedProvider(p providers.Provider, prefix string) providers.Provider {
	pp := &prefixedProvider{p: p, prefix: prefix}
	if _, ok := p.(providers.StartAfterLister); ok {
		return prefixedAfter{pp}
	}
	return pp
}

type prefixedProvider struct {
	p      providers.Provider
	prefix string
}

func (pp *prefixedProvider) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	pg, err := pp.p.ListPage(ctx, pp.prefix+prefix, token)
	if err != nil {
		return pg, err
	}
	return pp.strip(pg, prefix)
}

// strip takes the run's prefix off every key; a key outside it is the
// adapter's error, which the case reports.
func (pp *prefixedProvider) strip(pg providers.Page, prefix string) (providers.Page, error) {
	objs := make([]providers.Object, len(pg.Objects))
	for i, o := range pg.Objects {
		k, ok := strings.CutPrefix(o.Key, pp.prefix+prefix)
		if !ok {
			return providers.Page{}, fmt.Errorf("listing of prefix %q returned key %q", pp.prefix+prefix, o.Key)
		}
		o.Key = prefix + k
		objs[i] = o
	}
	pg.Objects = objs
	return pg, nil
}

func (pp *prefixedProvider) Stat(ctx context.Context, key string) (providers.Object, error) {
	o, err := pp.p.Stat(ctx, pp.prefix+key)
	if err != nil {
		return o, err
	}
	if o.Key != pp.prefix+key {
		return providers.Object{}, fmt.Errorf("stat %q returned key %q", pp.prefix+key, o.Key)
	}
	o.Key = key
	return o, nil
}

func (pp *prefixedProvider) Order() providers.Order { return pp.p.Order() }
func (pp *prefixedProvider) Close() error           { return pp.p.Close() }

type prefixedAfter struct{ *prefixedProvider }

func (pa prefixedAfter) ListPageAfter(ctx context.Context, prefix, startAfter string) (providers.Page, error) {
	bound := ""
	if startAfter != "" {
		bound = pa.prefix + startAfter
	}
	pg, err := pa.p.(providers.StartAfterLister).ListPageAfter(ctx, pa.prefix+prefix, bound)
	if err != nil {
		return pg, err
	}
	return pa.strip(pg, prefix)
}
