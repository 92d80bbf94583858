// Package providertest is the conformance suite every provider adapter
// passes against its emulator: paging, awkward keys, order, prefixes, stat,
// error mapping and cancellation.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// Harness gives the suite an empty bucket (container, directory) of its own
// and a way to change it behind the provider's back.
type Harness interface {
	// New returns a provider over a fresh, empty store, listing at most
	// pageSize objects per page.
	New(t *testing.T, pageSize int) Store
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
	t.Run("ListAwkwardKeysInOrder", func(t *testing.T) { testAwkward(t, h) })
	t.Run("Paging", func(t *testing.T) { testPaging(t, h) })
	t.Run("Prefix", func(t *testing.T) { testPrefix(t, h) })
	t.Run("Stat", func(t *testing.T) { testStat(t, h) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, h) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, h) })
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
