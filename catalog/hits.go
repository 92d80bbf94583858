package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/imgly/syncer/providers"
)

// Hit is one match of a text search with what the asset API's sort orders
// need, read from the search index without reading the entry: a query
// ranks its hits and counts them from these alone, then reads only its
// page's entries (Snapshot.HitEntry).
type Hit struct {
	// Key is the object's key. Its bytes are valid only during the call
	// that passes the hit; Clone keeps them.
	Key  []byte
	Size int64
	// LastModified is in unix ns, math.MinInt64 when unknown: unknown
	// sorts first, as the zero time.Time does.
	LastModified int64
	// entry is the entry itself, for a backend that read it anyway.
	entry *Entry
}

// Clone returns h with its own copy of Key.
func (h *Hit) Clone() Hit {
	c := *h
	c.Key = bytes.Clone(h.Key)
	return c
}

// HitOf is the hit of a decoded entry.
func HitOf(e *Entry) Hit {
	h := Hit{Key: []byte(e.Key), Size: e.Size, LastModified: math.MinInt64, entry: e}
	if !e.LastModified.IsZero() {
		h.LastModified = e.LastModified.UnixNano()
	}
	return h
}

// HitSearcher is a Searcher that also yields hits without reading their
// entries (bbolt: the fields in the search blocks). Handled is as for
// Searcher.
type HitSearcher interface {
	SearchHits(ctx context.Context, text string, match func(key []byte) bool, fn func(*Hit) error) (handled bool, err error)
}

// SearchHits is Search yielding hits: the same keys in the same order,
// each with its sort fields. fn's hit is valid only during the call.
func (sn *Snapshot) SearchHits(ctx context.Context, text string, match func(key []byte) bool, fn func(*Hit) error) error {
	if s, ok := sn.r.(HitSearcher); ok && text != "" {
		if handled, err := s.SearchHits(ctx, text, match, fn); handled || err != nil {
			return err
		}
	}
	return sn.Search(ctx, text, match, func(e Entry) error {
		h := HitOf(&e)
		return fn(&h)
	})
}

// HitEntry returns the entry of a hit from this snapshot.
func (sn *Snapshot) HitEntry(h *Hit) (Entry, error) {
	if h.entry != nil {
		return *h.entry, nil
	}
	e, ok, err := sn.Get(string(h.Key))
	if err == nil && !ok {
		err = errors.New("no such entry")
	}
	if err != nil {
		return Entry{}, fmt.Errorf("catalog: entry of hit %q: %w", h.Key, err)
	}
	return e, nil
}

// SearchHits: see Snapshot.SearchHits. Without blocks (a source not
// indexed, or not committed since) it reports handled false and the caller
// does a pass.
func (sn *boltSnapshot) SearchHits(ctx context.Context, text string, match func(key []byte) bool, fn func(*Hit) error) (bool, error) {
	t := []byte(text)
	// A text holding a separator is not folded UTF-8: the pass handles it.
	if sn.search == nil || sn.objs == nil || len(t) == 0 || bytes.IndexByte(t, recText) >= 0 || bytes.IndexByte(t, recEnd) >= 0 {
		return false, nil
	}
	c := sn.search.Cursor()
	n := 0
	var buf []byte // the key, for a UTF-16 source whose sort keys differ
	anchor := -1
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n++; n%256 == 0 && ctx.Err() != nil {
			return true, ctx.Err()
		}
		if anchor < 0 {
			anchor = rarestByte(v, t)
		}
		err := sn.searchBlock(v, t, anchor, func(sk, f []byte) error {
			h := Hit{Key: sk, Size: int64(binary.BigEndian.Uint64(f[8:])), LastModified: math.MinInt64}
			if ns := int64(binary.BigEndian.Uint64(f)); ns != 0 {
				h.LastModified = ns
			}
			if sn.src.order != providers.ByteOrder {
				buf = append(buf[:0], sn.src.order.FromSortKey(string(sk))...)
				h.Key = buf
			}
			if match != nil && !match(h.Key) {
				return nil
			}
			return fn(&h)
		})
		switch {
		case errors.Is(err, ErrStop):
			return true, nil
		case errors.Is(err, errCorruptBlock):
			return true, fmt.Errorf("block %q: %w", k, err)
		case err != nil:
			return true, err
		}
	}
	return true, nil
}

// rarestByte picks the byte of t that is rarest in a sample of the
// source's text (its first block): the one to look for with IndexByte.
// bytes.Index looks for t's first byte, and in file names that is often a
// letter of every key (the "n" of ".png" for "needle"): a short IndexByte
// per record then, where a rare byte makes one long vectorised run.
func rarestByte(sample, t []byte) int {
	var freq [256]int
	for _, c := range sample {
		freq[c]++
	}
	j := 0
	for i := range t {
		if freq[t[i]] < freq[t[j]] {
			j = i
		}
	}
	return j
}

// indexFrom is bytes.Index(s[off:], t)+off (or -1), found through the
// occurrences of t[j]: each is a candidate start j bytes before it, in
// increasing order, so the first that holds t is the first occurrence.
func indexFrom(s []byte, off int, t []byte, j int) int {
	for p := off + j; p < len(s); p++ {
		i := bytes.IndexByte(s[p:], t[j])
		if i < 0 {
			return -1
		}
		p += i
		if c := p - j; c+len(t) <= len(s) && bytes.Equal(s[c:c+len(t)], t) {
			return c
		}
	}
	return -1
}

// searchBlock calls fn with the sort key and the fields of each record of
// block v whose text holds t, looking for t through its byte at anchor.
func (sn *boltSnapshot) searchBlock(v, t []byte, anchor int, fn func(sk, fields []byte) error) error {
	text, fields, err := splitBlock(v)
	if err != nil {
		return err
	}
	// The number of the record starting at pos: counted on from the last
	// hit, so a block's text is counted through at most once.
	pos, idx := 0, 0
	for off := 0; off < len(text); {
		i := indexFrom(text, off, t, anchor)
		if i < 0 {
			break
		}
		rs := bytes.LastIndexByte(text[:i], recEnd) + 1
		r, rn, err := parseRecord(text[rs:])
		if err != nil {
			return err
		}
		off = rs + rn
		if i >= rs+bytes.IndexByte(r.raw, recText) {
			continue // the hit is in the sort key, not the text
		}
		idx += bytes.Count(text[pos:rs], []byte{recEnd})
		pos = rs
		if (idx+1)*fieldSize > len(fields) {
			return errCorruptBlock
		}
		if err := fn(r.sk, fields[idx*fieldSize:(idx+1)*fieldSize]); err != nil {
			return err
		}
	}
	return nil
}

// Search: see Snapshot.Search; the hits' entries, read from the objects.
func (sn *boltSnapshot) Search(ctx context.Context, text string, match func(key []byte) bool, fn func(Entry) error) (bool, error) {
	return sn.SearchHits(ctx, text, match, func(h *Hit) error {
		v := sn.objs.Get([]byte(sn.src.order.SortKey(string(h.Key))))
		if v == nil {
			return fmt.Errorf("catalog: search record %q without object", h.Key)
		}
		e, err := decodeEntry(string(h.Key), v)
		if err != nil {
			return fmt.Errorf("key %q: %w", h.Key, err)
		}
		return fn(e)
	})
}
