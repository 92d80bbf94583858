package catalog

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var (
	// keyListed marks a source whose listing has reached its end at least
	// once; keyResume holds the key a first listing has committed through.
	keyListed = []byte("listed")
	keyResume = []byte("resume")
)

// ListingState is what the catalog knows of a source's listings.
type ListingState struct {
	// Complete: a listing of the source reached its end at least once.
	Complete bool
	// InProgress: a first listing has begun and not yet completed; After is
	// the last key it committed through ("" before its first commit).
	InProgress bool
	After      string
}

// ListingState returns what the catalog records of the source's listings.
func (s *boltSource) ListingState(ctx context.Context) (ListingState, error) {
	var st ListingState
	err := s.c.db.View(func(tx *bolt.Tx) error {
		src := s.bucket(tx)
		if src == nil {
			return nil
		}
		st.Complete = src.Get(keyListed) != nil
		if v := src.Get(keyResume); v != nil {
			st.InProgress, st.After = true, string(v)
		}
		return nil
	})
	if err != nil {
		return ListingState{}, fmt.Errorf("catalog: listing state %s: %w", s.id, err)
	}
	return st, nil
}

// SetListingProgress records that a first listing has committed every key
// up to and including after ("": it has begun), so that a restart resumes
// it there instead of listing a huge first import from the start again.
func (s *boltSource) SetListingProgress(ctx context.Context, after string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.c.db.Update(func(tx *bolt.Tx) error {
		src, err := tx.Bucket(rootBucket).CreateBucketIfNotExists(s.bid)
		if err != nil {
			return err
		}
		return src.Put(keyResume, []byte(after))
	})
	if err != nil {
		return fmt.Errorf("catalog: record listing progress of %s: %w", s.id, err)
	}
	return nil
}

// SetListingComplete records that a listing of the source reached its end
// and forgets a first listing's progress. It writes only when that changes
// something, so that rescans leave the file untouched.
func (s *boltSource) SetListingComplete(ctx context.Context) error {
	if st, err := s.ListingState(ctx); err != nil || st.Complete && !st.InProgress {
		return err
	}
	err := s.c.db.Update(func(tx *bolt.Tx) error {
		src, err := tx.Bucket(rootBucket).CreateBucketIfNotExists(s.bid)
		if err != nil {
			return err
		}
		if err := src.Delete(keyResume); err != nil {
			return err
		}
		return src.Put(keyListed, []byte{1})
	})
	if err != nil {
		return fmt.Errorf("catalog: record listing complete of %s: %w", s.id, err)
	}
	return nil
}
