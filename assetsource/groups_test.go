package assetsource_test

import (
	"math/rand/v2"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// A query naming groups (answered with a seek per group) answers as a
// reference that reads every object with the documented semantics: over
// keys whose first folder below the prefix is spelt every way rel reads it
// ("pre/g1/…", "preg1/…", "pre//g1/…", a file named like a group), with
// text, tags, excluded groups and each order, indexed or not, and, once a
// key outside the prefix exists, through the pass instead.
func TestGroupsDifferential(t *testing.T) {
	const prefix = "pre"
	rng := rand.New(rand.NewPCG(5, 6))
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	sources := []*catalog.Source{cat.Source("ix", providers.UTF16Order).Indexed(true), cat.Source("plain", providers.UTF16Order)}
	objs := map[string]catalog.Entry{}
	heads := []string{"pre/", "pre", "pre//", "pre/x"}
	groups := []string{"g1", "g2", "G1", "é", "g1x", "\uFF5E"}
	tails := []string{"a", "B", "/", "needle", "é", "-", "\U0001F600"}
	commitAll := func(muts []catalog.Mutation) {
		for _, s := range sources {
			changes, err := s.Commit(t.Context(), muts)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range changes {
				if s == sources[0] {
					objs[c.Object.Key] = catalog.Entry{Object: c.Object, Seq: c.Seq}
				}
			}
		}
	}
	var muts []catalog.Mutation
	for range 3000 {
		k := heads[rng.IntN(len(heads))] + groups[rng.IntN(len(groups))]
		if rng.IntN(8) != 0 {
			k += "/"
		}
		for range rng.IntN(4) {
			k += tails[rng.IntN(len(tails))]
		}
		muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Object: randomObject(rng, k)})
	}
	commitAll(muts)
	shapes := []string{"groups=g1", "groups=g1,g2&query=needle", "groups=G1,é&tags=g1", "groups=g1,g2&excludeGroups=g2",
		"groups=g1,g1&sortKey=key&sortingOrder=Ascending&page=1&perPage=7", "groups=a/b", "groups=\uFF5E,g2&sortKey=size&sortingOrder=Descending",
		"groups=g1x&sortKey=name", "groups=g2&sortKey=lastModified&sortingOrder=Ascending&page=3&perPage=5",
		"groups=g1,é&sortKey=key&sortingOrder=Ascending&after=&perPage=9", "groups=g1&query=G1/&sortKey=key&sortingOrder=Descending"}
	check := func(phase string) {
		for _, shape := range shapes {
			v, err := url.ParseQuery(shape)
			if err != nil {
				t.Fatal(err)
			}
			q, err := assetsource.ParseQuery(v)
			if err != nil {
				t.Fatal(err)
			}
			wantKeys, wantTotal := reference(objs, prefix, q)
			for _, s := range sources {
				got, err := assetsource.Run(t.Context(), s, providers.UTF16Order, prefix, q)
				if err != nil {
					t.Fatal(err)
				}
				if got.Total != wantTotal || !slices.Equal(entryKeys(got), wantKeys) {
					t.Errorf("%s, %s, %s: %d %q, want %d %q", phase, s.ID(), shape, got.Total, entryKeys(got), wantTotal, wantKeys)
				}
			}
		}
	}
	check("all keys under the prefix")
	commitAll([]catalog.Mutation{{Origin: catalog.Scan, Object: randomObject(rng, "/g1/outside")},
		{Origin: catalog.Scan, Object: randomObject(rng, "zz/g1/outside")}})
	check("keys outside the prefix")
}

// reference answers q over every object as the README states it: rel is
// the key below the prefix, the group its first folder, the tags its
// folders; ties by key; the page cut from the whole sorted match.
func reference(objs map[string]catalog.Entry, prefix string, q assetsource.Query) (keys []string, total int) {
	var es []catalog.Entry
	for _, e := range objs {
		r := strings.TrimPrefix(strings.TrimPrefix(e.Key, prefix), "/")
		g, _, inGroup := strings.Cut(r, "/")
		if !inGroup {
			g = ""
		}
		var tags []string
		if d := path.Dir(r); d != "." && d != "/" {
			tags = strings.Split(d, "/")
		}
		switch {
		case q.Text != "" && !catalog.ContainsFold(r, q.Text),
			len(q.Groups) > 0 && (g == "" || !slices.Contains(q.Groups, g)),
			g != "" && slices.Contains(q.ExcludeGroups, g),
			slices.ContainsFunc(q.Tags, func(t string) bool { return !slices.Contains(tags, t) }):
			continue
		}
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b catalog.Entry) int {
		c := 0
		switch q.Sort {
		case assetsource.ByLastModified:
			c = a.LastModified.Compare(b.LastModified)
		case assetsource.BySize:
			c = int(a.Size - b.Size)
		case assetsource.ByName:
			c = strings.Compare(path.Base(a.Key), path.Base(b.Key))
		}
		if c == 0 {
			c = providers.UTF16Order.Compare(a.Key, b.Key)
		}
		if q.Desc {
			return -c
		}
		return c
	})
	total = len(es)
	if q.Cursor && q.After != "" { // a cursor's total is the whole match's
		i := slices.IndexFunc(es, func(e catalog.Entry) bool { return providers.UTF16Order.Compare(e.Key, q.After) > 0 })
		if i < 0 {
			i = len(es)
		}
		es = es[i:]
	}
	from := min(q.Page*q.PerPage, len(es))
	for _, e := range es[from:min(from+q.PerPage, len(es))] {
		keys = append(keys, e.Key)
	}
	return keys, total
}

// The reference itself: a check that it reads groups as rel does.
func TestReferenceGroups(t *testing.T) {
	objs := map[string]catalog.Entry{}
	for i, k := range []string{"pre/g1/a", "preg1/b", "pre//g1/c", "pre/g1", "pre/g2/g1/d"} {
		objs[k] = catalog.Entry{Object: providers.Object{Key: k, Size: int64(i)}}
	}
	keys, total := reference(objs, "pre", assetsource.Query{Groups: []string{"g1"}, Sort: assetsource.ByKey, PerPage: 10})
	if want := []string{"pre/g1/a", "preg1/b"}; total != 2 || !slices.Equal(keys, want) {
		t.Errorf("reference: %d %q, want %q", total, keys, want)
	}
}
