package catalog

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/imgly/syncer/providers"
)

// Values are a compact binary record rather than JSON: a no-change rescan
// decodes every entry of the source, and this keeps that cheap.
//
//	entry:  ver=1 | seq uvarint | size varint | mtime varint(unix ns, 0=unknown) | etag | version | ctype
//	change: ver=1 | op | origin | at varint | key | size | mtime | etag | version | ctype
//
// Strings are uvarint length + bytes.
const codecVersion = 1

var errCorrupt = errors.New("catalog: corrupt record")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func appendObjectTail(b []byte, o *providers.Object) []byte {
	b = binary.AppendVarint(b, o.Size)
	b = appendTime(b, o.LastModified)
	b = appendString(b, o.ETag)
	b = appendString(b, o.Version)
	return appendString(b, o.ContentType)
}

func encodeEntry(b []byte, seq uint64, o *providers.Object) []byte {
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, seq)
	return appendObjectTail(b, o)
}

func encodeChange(b []byte, c *Change) []byte {
	b = append(b, codecVersion, byte(c.Op), byte(c.Origin))
	b = appendTime(b, c.At)
	b = appendString(b, c.Object.Key)
	return appendObjectTail(b, &c.Object)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil || uint64(len(r.b)) < n {
		r.err = errCorrupt
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) time() time.Time {
	ns := r.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (r *reader) objectTail(o *providers.Object) {
	o.Size = r.varint()
	o.LastModified = r.time()
	o.ETag = r.string()
	o.Version = r.string()
	o.ContentType = r.string()
}

func decodeEntry(key string, v []byte) (Entry, error) {
	r := reader{b: v}
	if r.byte() != codecVersion {
		return Entry{}, errCorrupt
	}
	e := Entry{Object: providers.Object{Key: key}}
	e.Seq = r.uvarint()
	r.objectTail(&e.Object)
	return e, r.err
}

func decodeChange(seq uint64, v []byte) (Change, error) {
	r := reader{b: v}
	if r.byte() != codecVersion {
		return Change{}, errCorrupt
	}
	c := Change{Seq: seq}
	c.Op = Op(r.byte())
	c.Origin = Origin(r.byte())
	c.At = r.time()
	c.Object.Key = r.string()
	r.objectTail(&c.Object)
	return c, r.err
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// marker is the last notification applied to a key.
type marker struct {
	seq    string
	delete bool
	at     time.Time
}

func encodeMarker(seq string, del bool, at time.Time) []byte {
	b := []byte{codecVersion, 0}
	if del {
		b[1] = 1
	}
	b = appendTime(b, at)
	return appendString(b, seq)
}

func decodeMarker(v []byte) (marker, bool) {
	if v == nil {
		return marker{}, false
	}
	r := reader{b: v}
	if r.byte() != codecVersion {
		return marker{}, false
	}
	m := marker{delete: r.byte() == 1}
	m.at = r.time()
	m.seq = r.string()
	return m, r.err == nil
}

// newer reports whether a notification (seq, del) comes after mk: a greater
// sequencer, or an equal one where a delete follows an upsert.
func newer(seq string, del bool, mk marker) bool {
	switch {
	case seq > mk.seq:
		return true
	case seq < mk.seq:
		return false
	}
	return del && !mk.delete
}
