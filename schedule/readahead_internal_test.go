package schedule

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// The read-ahead hands over every entry once, in order, across chunks, and
// drops those at or before the key the merge has finished with: entries
// the scan's own commits wrote behind it.
func TestReadAheadChunksAndSkipsMerged(t *testing.T) {
	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cs := c.Source("s", providers.ByteOrder)
	var muts []catalog.Mutation
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		muts = append(muts, catalog.Mutation{Object: providers.Object{Key: k, ETag: k}, Origin: catalog.Scan})
	}
	if _, err := cs.Commit(context.Background(), muts); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after, merged string
		chunk         int
		want          string
	}{
		{"", "", 2, "abcdefg"},
		{"", "", 7, "abcdefg"}, // a full last chunk: one more, empty read ends it
		{"", "", 100, "abcdefg"},
		{"b", "", 3, "cdefg"},
		{"", "d", 2, "efg"}, // a..d were merged already
		{"a", "f", 1, "g"},
		{"", "g", 3, ""},
	} {
		a := startReadAhead(context.Background(), cs, providers.ByteOrder, tc.after, tc.chunk)
		var got string
		for {
			e, ok, err := a.next(tc.merged)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got += e.Key
			if e.ETag != e.Key {
				t.Errorf("entry %q has etag %q", e.Key, e.ETag)
			}
			a.pop()
		}
		a.close()
		if got != tc.want {
			t.Errorf("after %q, merged %q, chunk %d: %q, want %q", tc.after, tc.merged, tc.chunk, got, tc.want)
		}
	}
}

// Closing the read-ahead while its reader waits to hand over a chunk ends
// the reader.
func TestReadAheadCloseWhileAhead(t *testing.T) {
	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cs := c.Source("s", providers.ByteOrder)
	var muts []catalog.Mutation
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		muts = append(muts, catalog.Mutation{Object: providers.Object{Key: k}, Origin: catalog.Scan})
	}
	if _, err := cs.Commit(context.Background(), muts); err != nil {
		t.Fatal(err)
	}
	a := startReadAhead(context.Background(), cs, providers.ByteOrder, "", 1)
	if e, ok, err := a.next(""); err != nil || !ok || e.Key != "a" {
		t.Fatalf("first entry: %q %v %v", e.Key, ok, err)
	}
	a.close() // returns only once the reader has stopped
}

// A scan cancelled while the merge waits for a chunk ends: the reader may
// see the cancellation before it hands its failed read over, and the merge
// must not wait for a chunk that never comes (it hung a shutdown).
func TestReadAheadCancelledDoesNotHang(t *testing.T) {
	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cs := c.Source("s", providers.ByteOrder)
	if _, err := cs.Commit(context.Background(), []catalog.Mutation{
		{Object: providers.Object{Key: "a", ETag: "a"}, Origin: catalog.Scan},
	}); err != nil {
		t.Fatal(err)
	}
	// The reader chooses at random between handing its error over and
	// seeing the cancellation: enough rounds take both ways.
	for i := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a := startReadAhead(ctx, cs, providers.ByteOrder, "", 2)
		got := make(chan error, 1)
		go func() { _, _, err := a.next(""); got <- err }()
		select {
		case err := <-got:
			// Either the chunk read before the reader saw the
			// cancellation, or the cancellation.
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: next still waits 10 s after the scan was cancelled", i)
		}
		a.close()
	}
}
