// Package providertest is the conformance suite every provider adapter
// passes against its emulator: paging, awkward keys, order, prefixes, stat,
// error mapping and cancellation.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// Harness gives the suite an empty bucket (container, directory) of its own
// and a way to change it behind the provider's back.
type Harness interface {
	// New returns a provider over a fresh, empty store, listing at most
	// pageSize objects per page.
	New(t *testing.T, pageSize int) Store
}

// FaultHarness is a Harness for an adapter that talks HTTP: its stores can
// be reached through a fault proxy, for the cases that need a store that
// fails (not-a-listing bodies, throttling, stalls).
type FaultHarness interface {
	Harness
	// NewBehindProxy returns a fresh store whose provider talks to the
	// emulator through a new fault proxy, and the proxy.
	NewBehindProxy(t *testing.T, pageSize int) (Store, *testkit.FaultProxy)
	// NotListings are the adapter's own 200 bodies that are not a listing
	// of s, a store from NewBehindProxy (Azure: an <Error> document; GCS: a
	// JSON object), by name; the suite adds those every adapter must refuse.
	NotListings(s Store) map[string]testkit.Fault
	// BucketNotFoundCode is the error code the store sends with a 404 for
	// a missing bucket ("" when its SDK reads the status alone).
	BucketNotFoundCode() string
}

// Store is one fresh bucket and the provider over it.
type Store interface {
	Provider() providers.Provider
	Put(t *testing.T, key string, body []byte, contentType string)
	Delete(t *testing.T, key string)
}

// AwkwardKeys are keys that have broken listings and notifications before:
// spaces, '+', '%', unicode in several planes, nested prefixes, dots and
// slashes in the order-sensitive places.
var AwkwardKeys = []string{
	"a b.jpg",
	"a+b.jpg",
	"a%2Fb.jpg",
	"a%b.png",
	"a.txt",
	"a/b.jpg",
	"a/b/c/d.jpg",
	"a-b/x.jpg",
	"ünïcødé/naïve café.png",
	"日本語/画像.jpg",
	"emoji/😀.png",
	"emoji/\uFF21.png", // fullwidth A: after 😀 in UTF-16, before it in UTF-8
	"z~tilde",
	"UPPER/Case.JPG",
	"q?x=1&y=2.jpg",
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	runListing(t, h)
	t.Run("NotAListing", func(t *testing.T) { testNotListing(t, h) })
	t.Run("StatusKinds", func(t *testing.T) { testStatusKinds(t, h) })
	t.Run("Stall", func(t *testing.T) { testStall(t, h) })
	t.Run("MissingBucket", func(t *testing.T) { testMissingBucket(t, h) })
	t.Run("Permission", func(t *testing.T) { testPermission(t, h) })
	t.Run("UnderPrefix", func(t *testing.T) { runListing(t, prefixed{h}) })
}

// runListing runs the cases that list and stat through Harness alone; Run
// runs them again under RunPrefix.
func runListing(t *testing.T, h Harness) {
	t.Run("ListAwkwardKeysInOrder", func(t *testing.T) { testAwkward(t, h) })
	t.Run("Paging", func(t *testing.T) { testPaging(t, h) })
	t.Run("Prefix", func(t *testing.T) { testPrefix(t, h) })
	t.Run("Stat", func(t *testing.T) { testStat(t, h) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, h) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, h) })
	t.Run("StartAfter", func(t *testing.T) { testStartAfter(t, h) })
	t.Run("CancelDirect", func(t *testing.T) { testCancelDirect(t, h) })
	t.Run("WritesBetweenPages", func(t *testing.T) { testWritesBetweenPages(t, h) })
	t.Run("PrefixEdges", func(t *testing.T) { testPrefixEdges(t, h) })
}

func faultHarness(t *testing.T, h Harness) FaultHarness {
	t.Helper()
	fh, ok := h.(FaultHarness)
	if !ok {
		t.Skip("the adapter talks no HTTP: no fault proxy")
	}
	return fh
}

// XHTMLPage is what a captive portal or a misrouted load balancer answers.
const XHTMLPage = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Sign in</title></head><body><p>Please sign in.</p></body></html>`

// testNotListing answers a listing request with 200 and a body that is not a
// listing of the bucket asked for: each must fail the page (ErrNotListing),
// never read as an empty bucket.
func testNotListing(t *testing.T, h Harness) {
	fh := faultHarness(t, h)
	ctx := context.Background()

	// A genuine listing, of another bucket, recorded on its way through.
	other, op := fh.NewBehindProxy(t, 10)
	other.Put(t, "foreign.txt", []byte("x"), "")
	ListAll(t, other.Provider(), "")
	foreign, ok := op.Last()
	if !ok || foreign.Status != 200 {
		t.Fatalf("no listing recorded: %+v", foreign)
	}

	s, proxy := fh.NewBehindProxy(t, 10)
	s.Put(t, "mine.txt", []byte("x"), "")
	// The bucket's own listing, cut off before its end: every field a
	// check reads may be there, only the end is missing.
	ListAll(t, s.Provider(), "")
	own, ok := proxy.Last()
	if !ok || own.Status != 200 || len(own.Body) < 40 {
		t.Fatalf("no listing of the bucket recorded: %+v", own)
	}
	bodies := map[string]testkit.Fault{
		"cut off":                  testkit.Body(own.ContentType, own.Body[:len(own.Body)-12]),
		"empty":                    testkit.Body("application/xml", nil),
		"whitespace":               testkit.Body("application/xml", []byte(" \r\n\t \n")),
		"plain text":               testkit.Body("text/plain", []byte("OK")),
		"JSON {}":                  testkit.Body("application/json", []byte("{}")),
		"XHTML page":               testkit.Body("application/xhtml+xml", []byte(XHTMLPage)),
		"another bucket's listing": testkit.Body(foreign.ContentType, foreign.Body),
	}
	for name, f := range fh.NotListings(s) {
		bodies[name] = f
	}
	names := make([]string, 0, len(bodies))
	for name := range bodies {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			// Every GET, so that an SDK retry sees the same body.
			proxy.Clear()
			proxy.Rate(1, testkit.IsGET, bodies[name])
			pg, err := s.Provider().ListPage(ctx, "", "")
			if !errors.Is(err, providers.ErrNotListing) || !retryable(err) {
				t.Fatalf("page %+v, error %v: want ErrNotListing (retryable)", pg, err)
			}
			t.Logf("%s: %v", name, err)
		})
	}
	proxy.Clear()
	if got := keysOf(ListAll(t, s.Provider(), "")); len(got) != 1 || got[0] != "mine.txt" {
		t.Fatalf("after the faults: %q", got)
	}
}

// testStatusKinds checks the one status-to-kind mapping through the
// adapter, for a listing and a stat: throttling is ErrThrottled whatever the
// store, other 5xx and 408 ErrTransient, 401/403 ErrPermission, 400
// ErrInvalidArguments, a 404 a missing bucket on a listing and a missing
// bucket or key on a stat. Every request fails, so the SDK's own retries
// see the same.
func testStatusKinds(t *testing.T, h Harness) {
	fh := faultHarness(t, h)
	s, proxy := fh.NewBehindProxy(t, 10)
	s.Put(t, "k", []byte("x"), "")
	anyNotFound := []error{providers.ErrNotFound, providers.ErrBucketNotFound}
	for _, tc := range []struct {
		status     int
		code       string
		list, stat []error // the kinds accepted; nil: any error of no not-found kind
	}{
		{400, "", []error{providers.ErrInvalidArguments}, []error{providers.ErrInvalidArguments}},
		{401, "", []error{providers.ErrPermission}, []error{providers.ErrPermission}},
		{403, "", []error{providers.ErrPermission}, []error{providers.ErrPermission}},
		{403, "AccessDenied", []error{providers.ErrPermission}, []error{providers.ErrPermission}},
		{404, fh.BucketNotFoundCode(), []error{providers.ErrBucketNotFound}, anyNotFound},
		{408, "", []error{providers.ErrTransient}, []error{providers.ErrTransient}},
		{409, "", nil, nil},
		{429, "", []error{providers.ErrThrottled}, []error{providers.ErrThrottled}},
		{503, "", []error{providers.ErrThrottled}, []error{providers.ErrThrottled}},
		{503, "SlowDown", []error{providers.ErrThrottled}, []error{providers.ErrThrottled}},
		{503, "ServerBusy", []error{providers.ErrThrottled}, []error{providers.ErrThrottled}},
		{500, "", []error{providers.ErrTransient}, []error{providers.ErrTransient}},
	} {
		t.Run(fmt.Sprintf("%d%s", tc.status, tc.code), func(t *testing.T) {
			proxy.Clear()
			proxy.Rate(1, nil, testkit.Status(tc.status, tc.code))
			defer proxy.Clear()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := s.Provider().ListPage(ctx, "", "")
			checkKind(t, "list", err, tc.list, anyNotFound)
			_, err = s.Provider().Stat(ctx, "k")
			checkKind(t, "stat", err, tc.stat, anyNotFound)
		})
	}
}

// checkKind reports err unless it is one of the kinds in want, or, with no
// want, unless it is an error of none of the kinds in not.
func checkKind(t *testing.T, what string, err error, want, not []error) {
	t.Helper()
	is := func(kinds []error) bool {
		return slices.ContainsFunc(kinds, func(k error) bool { return errors.Is(err, k) })
	}
	switch {
	case err == nil:
		t.Errorf("%s: no error", what)
	case want != nil && !is(want):
		t.Errorf("%s: %v, want one of %v", what, err, want)
	case want == nil && is(not):
		t.Errorf("%s: %v, want none of %v", what, err, not)
	}
}

// testStall: a store that accepts a request and never answers fails the
// call within the request timeout, naming it; once the stall ends the next
// listing succeeds.
func testStall(t *testing.T, h Harness) {
	fh := faultHarness(t, h)
	s, proxy := fh.NewBehindProxy(t, 10)
	s.Put(t, "k", []byte("x"), "")
	const timeout = 300 * time.Millisecond
	p := providers.WithTimeout(s.Provider(), timeout)

	proxy.Rate(1, nil, testkit.Stall())
	start := time.Now()
	err := providers.Walk(context.Background(), p, "", func(providers.Page) error { return nil })
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "requestTimeout 300ms") {
		t.Fatalf("stalled listing: %v, want a deadline naming requestTimeout", err)
	}
	// Generous: the machine may be loaded; without a deadline it never ends.
	if took > timeout+5*time.Second {
		t.Errorf("stalled listing failed after %v, timeout %v", took, timeout)
	}
	if _, err := p.Stat(context.Background(), "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled stat: %v, want a deadline", err)
	}
	proxy.Clear()
	proxy.Release()
	s.Put(t, "new", []byte("x"), "")
	// A roomier deadline: this listing is to succeed even on a loaded machine.
	if got := keysOf(ListAll(t, providers.WithTimeout(s.Provider(), 30*time.Second), "")); strings.Join(got, ",") != "k,new" {
		t.Fatalf("after the stall: %q", got)
	}
}

// ListAll walks the whole listing below prefix.
func ListAll(t *testing.T, p providers.Provider, prefix string) []providers.Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var objs []providers.Object
	err := providers.Walk(ctx, p, prefix, func(pg providers.Page) error {
		objs = append(objs, pg.Objects...)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return objs
}

func keysOf(objs []providers.Object) []string {
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys
}

func sorted(order providers.Order, keys []string) []string {
	out := append([]string(nil), keys...)
	sort.Slice(out, func(i, j int) bool { return order.Compare(out[i], out[j]) < 0 })
	return out
}

func testAwkward(t *testing.T, h Harness) {
	s := h.New(t, 4)
	for _, k := range AwkwardKeys {
		s.Put(t, k, []byte("body of "+k), "image/png")
	}
	p := s.Provider()
	objs := ListAll(t, p, "")
	want := sorted(p.Order(), AwkwardKeys)
	if got := keysOf(objs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("listing:\n got %q\nwant %q", got, want)
	}
	for _, o := range objs {
		if o.Size != int64(len("body of "+o.Key)) {
			t.Errorf("%q: size %d, want %d", o.Key, o.Size, len("body of "+o.Key))
		}
		if o.ETag == "" {
			t.Errorf("%q: no etag", o.Key)
		}
		if o.LastModified.IsZero() {
			t.Errorf("%q: no last-modified", o.Key)
		}
	}
}

func testPaging(t *testing.T, h Harness) {
	const n, pageSize = 23, 5
	s := h.New(t, pageSize)
	var keys []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("p/%03d.bin", i)
		keys = append(keys, k)
		s.Put(t, k, []byte{byte(i)}, "")
	}
	p := s.Provider()
	pages := 0
	err := providers.Walk(context.Background(), p, "", func(pg providers.Page) error {
		pages++
		if len(pg.Objects) > pageSize {
			return fmt.Errorf("page of %d objects, page size %d", len(pg.Objects), pageSize)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages < (n+pageSize-1)/pageSize {
		t.Errorf("%d pages for %d objects at %d per page", pages, n, pageSize)
	}
	if got := keysOf(ListAll(t, p, "")); strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Fatalf("got %q, want %q", got, keys)
	}
}

func testPrefix(t *testing.T, h Harness) {
	s := h.New(t, 3)
	for _, k := range []string{"img/a.jpg", "img/sub/b.jpg", "img.jpg", "imgx/c.jpg", "other/d.jpg"} {
		s.Put(t, k, []byte("x"), "")
	}
	got := keysOf(ListAll(t, s.Provider(), "img/"))
	want := []string{"img/a.jpg", "img/sub/b.jpg"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("prefix img/: got %q, want %q", got, want)
	}
}

func testStat(t *testing.T, h Harness) {
	s := h.New(t, 10)
	s.Put(t, "dir/x y+z.png", []byte("12345"), "image/png")
	p := s.Provider()
	ctx := context.Background()
	o, err := p.Stat(ctx, "dir/x y+z.png")
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if o.Key != "dir/x y+z.png" || o.Size != 5 || o.ETag == "" {
		t.Errorf("stat: %+v", o)
	}
	if o.ContentType != "" && o.ContentType != "image/png" {
		t.Errorf("stat content type %q", o.ContentType)
	}
	listed := ListAll(t, p, "")
	if len(listed) != 1 || listed[0].ETag != o.ETag || listed[0].Size != o.Size || listed[0].Version != o.Version {
		t.Errorf("listing %+v disagrees with stat %+v", listed, o)
	}
	if _, err := p.Stat(ctx, "dir/missing.png"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("stat of a missing key: %v, want ErrNotFound", err)
	}
	s.Delete(t, "dir/x y+z.png")
	if _, err := p.Stat(ctx, "dir/x y+z.png"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("stat of a deleted key: %v, want ErrNotFound", err)
	}
}

func testEmpty(t *testing.T, h Harness) {
	s := h.New(t, 10)
	if objs := ListAll(t, s.Provider(), ""); len(objs) != 0 {
		t.Fatalf("empty store lists %d objects", len(objs))
	}
}

func testCancel(t *testing.T, h Harness) {
	s := h.New(t, 2)
	for i := 0; i < 6; i++ {
		s.Put(t, fmt.Sprintf("c/%d", i), []byte("x"), "")
	}
	ctx, cancel := context.WithCancel(context.Background())
	pages := 0
	err := providers.Walk(ctx, s.Provider(), "", func(providers.Page) error {
		pages++
		cancel()
		return nil
	})
	if err == nil {
		t.Fatal("a cancelled listing returned no error: it would pass as complete")
	}
}

// testStartAfter: an adapter that can start a listing after a key
// (providers.StartAfterLister) lists exactly the keys after it, in order,
// across pages, with or without a prefix, also behind WithTimeout. Others
// (Azure has no start-after) say so through providers.CanStartAfter.
func testStartAfter(t *testing.T, h Harness) {
	s := h.New(t, 4)
	for _, k := range AwkwardKeys {
		s.Put(t, k, []byte("x"), "")
	}
	p := s.Provider()
	if !providers.CanStartAfter(p) {
		if providers.CanStartAfter(providers.WithTimeout(p, 0)) {
			t.Fatal("WithTimeout claims a start-after the provider does not have")
		}
		t.Skip("the provider cannot start a listing after a key; a first scan restarts from the start")
	}
	all := sorted(p.Order(), AwkwardKeys)
	after := func(prefix, bound string) []string {
		var out []string
		for _, k := range all {
			if strings.HasPrefix(k, prefix) && (bound == "" || p.Order().Compare(k, bound) > 0) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, tc := range []struct{ prefix, bound string }{
		{"", all[0]},          // the first key
		{"", all[5]},          // a key in the middle, across pages
		{"", all[5] + "\x01"}, // not a key: between two
		{"", "a"},             // before every key
		{"", all[len(all)-1]}, // the last key: nothing after it
		{"a/", "a/b.jpg"},     // with a prefix
		{"emoji/", "emoji/"},  // the prefix itself
	} {
		for name, prov := range map[string]providers.Provider{"direct": p, "WithTimeout": providers.WithTimeout(p, 0)} {
			var got []string
			err := providers.WalkAfter(context.Background(), prov, tc.prefix, tc.bound, func(pg providers.Page) error {
				got = append(got, keysOf(pg.Objects)...)
				return nil
			})
			if err != nil {
				t.Fatalf("%s: prefix %q after %q: %v", name, tc.prefix, tc.bound, err)
			}
			if want := after(tc.prefix, tc.bound); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s: prefix %q after %q:\n got %q\nwant %q", name, tc.prefix, tc.bound, got, want)
			}
		}
	}
}
