package catalog

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Outbox returns up to limit unpublished changes with Seq >= from, in order.
func (s *boltSource) Outbox(ctx context.Context, from uint64, limit int) ([]Change, error) {
	var changes []Change
	err := s.c.db.View(func(tx *bolt.Tx) error {
		src := s.bucket(tx)
		if src == nil || src.Bucket(outboxBucket) == nil {
			return nil
		}
		cur := src.Bucket(outboxBucket).Cursor()
		for k, v := cur.Seek(u64(from)); k != nil && len(changes) < limit; k, v = cur.Next() {
			c, err := decodeChange(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return fmt.Errorf("outbox seq %d: %w", binary.BigEndian.Uint64(k), err)
			}
			changes = append(changes, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: outbox %s: %w", s.id, err)
	}
	return changes, nil
}

// Ack removes the changes with Seq <= through from the outbox: they have
// been published. Acks are not urgent (the publisher keeps its own cursor,
// and the stream, not the outbox, tells a restart what was published), so
// they join the group commit of concurrent notification commits.
//
// A large ack is cut into transactions of at most ackChunkSize records and
// ackHold of deleting, so that it never holds the writer for long: a
// notification commit waits for one chunk at most. An ack that covers the whole outbox (a first import flushed by `scan`)
// drops the outbox bucket instead, which frees its pages without visiting
// every record.
func (s *boltSource) Ack(ctx context.Context, through uint64) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var done bool
		err := s.c.group.update(func(tx *bolt.Tx) error {
			done = false // update may run this more than once
			src := s.bucket(tx)
			if src == nil || src.Bucket(outboxBucket) == nil {
				done = true
				return nil
			}
			var err error
			done, err = ackChunk(src, through)
			return err
		})
		if err != nil {
			return fmt.Errorf("catalog: ack %s through %d: %w", s.id, through, err)
		}
		if done {
			return nil
		}
	}
}

// ackChunkSize bounds the records one ack transaction deletes. At 4,096 a
// chunk costs a few milliseconds on a quiet machine; ackHold bounds it in
// time as well, since on a loaded one it costs ten times that, and the
// notifications of its group wait for it.
const (
	ackChunkSize = 4096
	ackHold      = 5 * time.Millisecond
)

// ackChunk deletes up to ackChunkSize outbox records with Seq <= through,
// for ackHold at most, and reports whether none are left.
func ackChunk(src *bolt.Bucket, through uint64) (done bool, err error) {
	out := src.Bucket(outboxBucket)
	cur := out.Cursor()
	if last, _ := cur.Last(); last == nil {
		return true, nil
	} else if binary.BigEndian.Uint64(last) <= through {
		if err := src.DeleteBucket(outboxBucket); err != nil {
			return false, err
		}
		_, err := src.CreateBucket(outboxBucket)
		return err == nil, err
	}
	// Keys are collected first and deleted by key: a cursor that deletes and
	// goes back to First walks over the leaves emptied so far (bbolt
	// rebalances only at commit), which made one large ack quadratic.
	var keys [][]byte
	for k, _ := cur.First(); k != nil && binary.BigEndian.Uint64(k) <= through; k, _ = cur.Next() {
		if len(keys) == ackChunkSize {
			break
		}
		keys = append(keys, k)
	}
	start := time.Now()
	for i, k := range keys {
		if i > 0 && i%yieldEvery == 0 && time.Since(start) >= ackHold {
			return false, nil
		}
		if err := out.Delete(k); err != nil {
			return false, err
		}
	}
	return len(keys) < ackChunkSize, nil
}

// LastSeq returns the sequence number of the source's latest change, 0 if
// it has none.
func (s *boltSource) LastSeq(ctx context.Context) (uint64, error) {
	var seq uint64
	err := s.c.db.View(func(tx *bolt.Tx) error {
		if src := s.bucket(tx); src != nil {
			seq = getU64(src, keySeq)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: last seq %s: %w", s.id, err)
	}
	return seq, nil
}
