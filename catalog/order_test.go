package catalog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// The first open records the order; later opens with it pass, across a
// reopen of the file; another order is refused with both named.
func TestCheckOrderRecordsThenRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := catalog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.RecordedOrder(ctx, "az"); ok || err != nil {
		t.Fatalf("before the first open: recorded %v, %v", ok, err)
	}
	if err := c.Source("az", providers.UTF16Order).CheckOrder(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c, err = catalog.Open(dir); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if o, ok, err := c.RecordedOrder(ctx, "az"); !ok || err != nil || o != providers.UTF16Order {
		t.Fatalf("recorded %v %v %v, want utf16", o, ok, err)
	}
	if err := c.Source("az", providers.UTF16Order).CheckOrder(ctx); err != nil {
		t.Fatalf("same order again: %v", err)
	}
	err = c.Source("az", providers.ByteOrder).CheckOrder(ctx)
	if !errors.Is(err, catalog.ErrOrderMismatch) || !strings.Contains(err.Error(), "source az") ||
		!strings.Contains(err.Error(), "stored in utf16 order, configured for byte order") {
		t.Fatalf("another order: %v", err)
	}
	if o, _, _ := c.RecordedOrder(ctx, "az"); o != providers.UTF16Order {
		t.Errorf("a refused open changed the recorded order to %v", o)
	}
}
