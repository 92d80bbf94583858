package catalog

import (
	"context"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// Checking an order already recorded writes nothing: every scan checks it,
// and a no-change rescan must leave the file untouched (bench/scan.sh
// checks bbolt's transaction id).
func TestCheckOrderOfARecordedSourceDoesNotWrite(t *testing.T) {
	ctx := context.Background()
	c := openT(t, t.TempDir())
	s := c.Source("s", providers.ByteOrder)
	if err := s.CheckOrder(ctx); err != nil {
		t.Fatal(err)
	}
	txid := func() (id int) {
		c.bolt().View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }) //nolint:errcheck // never fails
		return id
	}
	before := txid()
	for range 3 {
		if err := c.Source("s", providers.ByteOrder).CheckOrder(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if after := txid(); after != before {
		t.Fatalf("checking a recorded order committed %d write transactions", after-before)
	}
}
