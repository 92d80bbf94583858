package catalog

import (
	"context"
	"testing"

	"github.com/imgly/syncer/providers"
)

// The listing state survives a reopen; marking complete clears the resume
// point and, once complete, writes nothing.
func TestListingState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openT(t, dir)
	s := c.Source("s", providers.ByteOrder)
	if st, err := s.ListingState(ctx); err != nil || st != (ListingState{}) {
		t.Fatalf("new source: %+v %v", st, err)
	}
	if err := s.SetListingProgress(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetListingProgress(ctx, "k/0042"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = openT(t, dir)
	s = c.Source("s", providers.ByteOrder)
	if st, err := s.ListingState(ctx); err != nil || st != (ListingState{InProgress: true, After: "k/0042"}) {
		t.Fatalf("after reopen: %+v %v", st, err)
	}
	if err := s.SetListingComplete(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := s.ListingState(ctx); err != nil || st != (ListingState{Complete: true}) {
		t.Fatalf("complete: %+v %v", st, err)
	}
	st := c.bolt().Stats()
	writes := st.TxStats.GetWrite()
	if err := s.SetListingComplete(ctx); err != nil {
		t.Fatal(err)
	}
	st = c.bolt().Stats()
	if got := st.TxStats.GetWrite(); got != writes {
		t.Errorf("marking a complete source complete again wrote %d pages", got-writes)
	}
	if id, _ := c.Sources(); len(id) != 1 || id[0] != "s" {
		t.Errorf("sources %v", id)
	}
}
