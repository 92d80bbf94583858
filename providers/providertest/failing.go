package providertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// MissingHarness is a Harness that can open a provider over a bucket
// (container, directory) that does not exist, or no longer does.
//
// ListPage must then fail with ErrBucketNotFound. Stat must fail with
// ErrBucketNotFound or ErrNotFound: S3's HEAD and GCS's object GET answer a
// bare 404 that does not say which is missing (Azure's and a local
// directory's say), so a caller that must know lists.
type MissingHarness interface {
	Harness
	NewMissing(t *testing.T, pageSize int) providers.Provider
}

// Denied is a provider whose credentials the store refuses.
type Denied struct {
	Provider providers.Provider
	// StatDenied says Stat is refused as well (a SAS with read but not list
	// permission stats fine).
	StatDenied bool
}

// DeniedHarness is a Harness whose emulator can refuse a request for want of
// permission. Denied returns providers over a store holding the key "k",
// by how they are refused.
type DeniedHarness interface {
	Harness
	Denied(t *testing.T) map[string]Denied
}

// testCancelDirect: ListPage and Stat called with a context that is already
// cancelled fail promptly with context.Canceled, not retryable. Walk checks
// the context itself; this is the adapter's own honouring of it.
func testCancelDirect(t *testing.T, h Harness) {
	s := h.New(t, 2)
	for i := range 3 {
		s.Put(t, fmt.Sprintf("c/%d", i), []byte("x"), "")
	}
	p := s.Provider()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(what string, call func() error) {
		t.Helper()
		start := time.Now()
		err := call()
		took := time.Since(start)
		if !errors.Is(err, context.Canceled) || retryable(err) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled, not retryable", what, err)
		}
		// Generous for a loaded machine; an SDK retrying would take longer.
		if took > 5*time.Second {
			t.Errorf("%s with a cancelled context took %v", what, took)
		}
	}
	check("ListPage", func() error { _, err := p.ListPage(ctx, "", ""); return err })
	check("ListPage of a later page", func() error {
		pg, err := p.ListPage(context.Background(), "", "")
		if err != nil || pg.Next == "" {
			return fmt.Errorf("first page: %+v, %v (want a next page)", pg, err)
		}
		_, err = p.ListPage(ctx, "", pg.Next)
		return err
	})
	check("Stat", func() error { _, err := p.Stat(ctx, "c/0"); return err })
	if providers.CanStartAfter(p) {
		check("ListPageAfter", func() error {
			_, err := p.(providers.StartAfterLister).ListPageAfter(ctx, "", "c/0")
			return err
		})
	}
}

// testMissingBucket: see MissingHarness.
func testMissingBucket(t *testing.T, h Harness) {
	mh, ok := h.(MissingHarness)
	if !ok {
		t.Skip("the harness cannot open a provider over a missing bucket")
	}
	p := mh.NewMissing(t, 10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := p.ListPage(ctx, "", "")
	if !errors.Is(err, providers.ErrBucketNotFound) || retryable(err) {
		t.Errorf("list of a missing bucket: page %+v, %v; want ErrBucketNotFound, not retryable", pg, err)
	}
	_, err = p.Stat(ctx, "k")
	if !errors.Is(err, providers.ErrBucketNotFound) && !errors.Is(err, providers.ErrNotFound) || retryable(err) {
		t.Errorf("stat in a missing bucket: %v; want ErrBucketNotFound or ErrNotFound, not retryable", err)
	}
	t.Logf("stat in a missing bucket: bucket not found %v, not found %v: %v",
		errors.Is(err, providers.ErrBucketNotFound), errors.Is(err, providers.ErrNotFound), err)
}

// testPermission: see DeniedHarness.
func testPermission(t *testing.T, h Harness) {
	dh, ok := h.(DeniedHarness)
	if !ok {
		t.Skip("the emulator refuses nothing for want of permission (the status mapping of 401/403 is in StatusKinds)")
	}
	for name, d := range dh.Denied(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			pg, err := d.Provider.ListPage(ctx, "", "")
			if !errors.Is(err, providers.ErrPermission) || retryable(err) {
				t.Errorf("list: page %+v, %v; want ErrPermission, not retryable", pg, err)
			}
			_, err = d.Provider.Stat(ctx, "k")
			switch {
			case d.StatDenied && (!errors.Is(err, providers.ErrPermission) || retryable(err)):
				t.Errorf("stat: %v; want ErrPermission, not retryable", err)
			case !d.StatDenied && err != nil:
				t.Errorf("stat: %v; want it allowed", err)
			}
		})
	}
}

// ReadAheadHarness is a Harness whose adapter (or emulator) lists later
// pages from a read made earlier (the local walker reads a directory whole;
// fake-gcs-server's token is the next page's first key). ReadsAhead
// says why; WritesBetweenPages then logs, rather than fails, keys inserted
// ahead of the cursor that are missed and keys deleted ahead that are
// listed. Order, no repeats and every key present throughout still hold.
type ReadAheadHarness interface {
	Harness
	ReadsAhead() string
}

// testWritesBetweenPages is gocloud drivertest's
// PaginationConsistencyAfterInsert/Delete: a listing whose bucket changes
// between two pages stays strictly ordered and repeats nothing; keys
// inserted ahead of the cursor are seen, keys deleted ahead are not, and
// every key present throughout is listed once.
func testWritesBetweenPages(t *testing.T, h Harness) {
	for _, pageSize := range []int{2, 3} {
		t.Run(fmt.Sprintf("page%d", pageSize), func(t *testing.T) {
			s := h.New(t, pageSize)
			initial := []string{"w/b", "w/d", "w/f", "w/h", "w/j", "w/l", "w/n"}
			for _, k := range initial {
				s.Put(t, k, []byte("x"), "")
			}
			p := s.Provider()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			first, err := p.ListPage(ctx, "w/", "")
			if err != nil {
				t.Fatal(err)
			}
			got := keysOf(first.Objects)
			if strings.Join(got, ",") != strings.Join(initial[:pageSize], ",") || first.Next == "" {
				t.Fatalf("first page %q (next %q), want %q and more", got, first.Next, initial[:pageSize])
			}
			cursor := got[len(got)-1]
			// Behind the cursor: one inserted, one deleted. Ahead: two
			// inserted (one between two kept keys, one after the last), two
			// deleted (the next key, and one further on).
			s.Put(t, "w/a", []byte("x"), "")
			s.Delete(t, initial[0])
			aheadIns := []string{"w/g0", "w/z"}
			aheadDel := []string{initial[pageSize], initial[pageSize+2]}
			for _, k := range aheadIns {
				s.Put(t, k, []byte("x"), "")
			}
			for _, k := range aheadDel {
				s.Delete(t, k)
			}
			for token := first.Next; token != ""; {
				pg, err := p.ListPage(ctx, "w/", token)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, keysOf(pg.Objects)...)
				token = pg.Next
			}
			for i := 1; i < len(got); i++ {
				if p.Order().Compare(got[i-1], got[i]) >= 0 {
					t.Fatalf("listing out of order or repeating at %d: %q", i, got)
				}
			}
			rest := got[pageSize:]
			ahead := t.Errorf
			if rh, ok := h.(ReadAheadHarness); ok && rh.ReadsAhead() != "" {
				t.Logf("the adapter reads ahead: %s", rh.ReadsAhead())
				ahead = t.Logf
			}
			for _, k := range rest {
				if p.Order().Compare(k, cursor) <= 0 {
					t.Errorf("after the cursor %q, key %q (behind it) listed: %q", cursor, k, got)
				}
				if slices.Contains(aheadDel, k) {
					ahead("key %q deleted ahead of the cursor was listed: %q", k, got)
				}
			}
			for _, k := range aheadIns {
				if !slices.Contains(rest, k) {
					ahead("key %q inserted ahead of the cursor was not listed: %q", k, got)
				}
			}
			for _, k := range initial[pageSize:] {
				if !slices.Contains(aheadDel, k) && !slices.Contains(rest, k) {
					t.Errorf("key %q present throughout was not listed: %q", k, got)
				}
			}
		})
	}
}

// testPrefixEdges: a prefix is a string prefix, not a directory: one
// without a slash matches keys beside the directory of that name, one that
// is a whole key lists that key (and its longer siblings), one that is
// nobody's prefix lists nothing.
func testPrefixEdges(t *testing.T, h Harness) {
	s := h.New(t, 2)
	all := []string{"im.jpg", "img.jpg", "img/a.jpg", "img/a.jpg.bak", "img/sub/b.jpg", "imgx/c.jpg", "imh/d.jpg"}
	for _, k := range all {
		s.Put(t, k, []byte("x"), "")
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"img", []string{"img.jpg", "img/a.jpg", "img/a.jpg.bak", "img/sub/b.jpg", "imgx/c.jpg"}},
		{"img/", []string{"img/a.jpg", "img/a.jpg.bak", "img/sub/b.jpg"}},
		{"img/a.jpg", []string{"img/a.jpg", "img/a.jpg.bak"}},
		{"img/sub/b.jpg", []string{"img/sub/b.jpg"}},
		{"img/s", []string{"img/sub/b.jpg"}},
		{"img/sub/", []string{"img/sub/b.jpg"}},
		{"img/none", nil},
		{"j", nil},
	} {
		got := keysOf(ListAll(t, s.Provider(), tc.prefix))
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("prefix %q: got %q, want %q", tc.prefix, got, tc.want)
		}
	}
}
