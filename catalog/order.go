package catalog

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// keyOrder, in a source's bucket, holds the key order (providers.Order's
// String) its keys are laid out in.
var keyOrder = []byte("order")

// ErrOrderMismatch marks a source opened with another key order than the
// one its keys are stored in.
var ErrOrderMismatch = errors.New("key order differs from the one the catalog records")

// CheckOrder records the source's key order at its first open and checks it
// at every later one. Keys are stored so that the catalog's byte order is the
// provider's; opened in another order, every listing would be diffed against
// a wrongly laid out catalog. So a mismatch is an error naming the source and
// both orders, never a silent re-layout. A source recorded before orders
// were (no key yet) takes the order it is opened with.
func (s *Source) CheckOrder(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stored, had, err := s.b.RecordOrder(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("catalog: record key order of %s: %w", s.id, err)
	case had && stored != s.order:
		return fmt.Errorf("catalog: source %s: %w: stored in %s order, configured for %s order (was its provider changed? a source of another kind needs a new id)",
			s.id, ErrOrderMismatch, stored, s.order)
	}
	return nil
}

// RecordedOrder returns the key order recorded for source id; ok is false
// when none is (a source never opened, or last opened before orders were
// recorded).
func (c *Catalog) RecordedOrder(ctx context.Context, id string) (o providers.Order, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if o, ok, err = c.b.RecordedOrder(ctx, id); err != nil {
		return 0, false, fmt.Errorf("catalog: key order of %s: %w", id, err)
	}
	return o, ok, nil
}

// RecordOrder records the source's order unless one is recorded, and
// returns the one that was (had: whether there was one).
func (s *boltSource) RecordOrder(ctx context.Context) (stored providers.Order, had bool, err error) {
	// Read first: every scan opens the source, and a write transaction
	// that changes nothing still commits a new meta page and freelist, so
	// a no-change rescan would not leave the file untouched.
	if stored, had, err = s.c.RecordedOrder(ctx, s.id); err != nil || had {
		return stored, had, err
	}
	err = s.c.db.Update(func(tx *bolt.Tx) error {
		src, err := tx.Bucket(rootBucket).CreateBucketIfNotExists(s.bid)
		if err != nil {
			return err
		}
		if v := src.Get(keyOrder); v != nil {
			stored, err = providers.ParseOrder(string(v))
			had = err == nil
			return err
		}
		return src.Put(keyOrder, []byte(s.order.String()))
	})
	return stored, had, err
}

// RecordedOrder reads the order recorded for source id without writing.
func (c *boltCatalog) RecordedOrder(ctx context.Context, id string) (o providers.Order, ok bool, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		src := tx.Bucket(rootBucket).Bucket([]byte(id))
		if src == nil {
			return nil
		}
		v := src.Get(keyOrder)
		if v == nil {
			return nil
		}
		o, err = providers.ParseOrder(string(v))
		ok = err == nil
		return err
	})
	return o, ok, err
}
