package catalog

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// extSort sorts byte records (a tag byte and a key) in bounded memory:
// records are gathered up to budget bytes, sorted, and written as a run to
// a temporary file; sorted merges the runs. A sort that fits its budget
// never touches the disk. The files are unlinked as soon as they are
// created, so a crash leaves nothing behind.
type extSort struct {
	dir    string
	budget int
	buf    []byte
	spans  []span
	runs   []*os.File
}

type span struct{ start, end uint32 }

// add adds a record. The budget is split between the records' bytes and
// their spans, each allocated once at its full size: grown by appending,
// they would hold up to twice the budget while the old arrays wait for the
// collector.
func (s *extSort) add(tag byte, key []byte) error {
	if s.buf == nil {
		s.buf = make([]byte, 0, s.budget*3/4)
		s.spans = make([]span, 0, s.budget/4/8)
	}
	if len(s.buf)+1+len(key) > cap(s.buf) || len(s.spans) == cap(s.spans) {
		if err := s.spill(); err != nil {
			return err
		}
	}
	start := len(s.buf)
	s.buf = append(append(s.buf, tag), key...)
	s.spans = append(s.spans, span{uint32(start), uint32(len(s.buf))})
	return nil
}

func (s *extSort) sortBuf() {
	slices.SortFunc(s.spans, func(a, b span) int {
		return bytes.Compare(s.buf[a.start:a.end], s.buf[b.start:b.end])
	})
}

// spill writes the gathered records, sorted, as a run.
func (s *extSort) spill() error {
	if len(s.spans) == 0 {
		return nil // a record larger than the budget: spilling gains nothing
	}
	s.sortBuf()
	f, err := os.CreateTemp(s.dir, ".ixsort-*")
	if err != nil {
		return err
	}
	// Unlinked at once: the open file stays readable until closed.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return err
	}
	s.runs = append(s.runs, f)
	w := bufio.NewWriterSize(f, 256<<10)
	var lenBuf [binary.MaxVarintLen32]byte
	for _, sp := range s.spans {
		n := binary.PutUvarint(lenBuf[:], uint64(sp.end-sp.start))
		if _, err := w.Write(lenBuf[:n]); err != nil {
			return fmt.Errorf("write sort run: %w", err)
		}
		if _, err := w.Write(s.buf[sp.start:sp.end]); err != nil {
			return fmt.Errorf("write sort run: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write sort run: %w", err)
	}
	s.buf, s.spans = s.buf[:0], s.spans[:0]
	return nil
}

// sorted returns the records in order. No record may be added after it.
func (s *extSort) sorted() (*sortedRecs, error) {
	if len(s.runs) == 0 {
		s.sortBuf()
		return &sortedRecs{mem: s}, nil
	}
	if len(s.spans) > 0 {
		if err := s.spill(); err != nil {
			return nil, err
		}
	}
	s.buf, s.spans = nil, nil
	m := &sortedRecs{}
	for _, f := range s.runs {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		r := &runReader{r: bufio.NewReaderSize(f, 64<<10)}
		ok, err := r.read()
		if err != nil {
			return nil, err
		}
		if ok {
			m.heap = append(m.heap, r)
		}
	}
	heap.Init(&m.heap)
	return m, nil
}

func (s *extSort) close() {
	for _, f := range s.runs {
		f.Close()
	}
	s.runs = nil
}

// sortedRecs yields sorted records: from memory, or merged from runs.
type sortedRecs struct {
	mem  *extSort
	i    int
	heap runHeap
	last []byte
}

// next returns the next record, nil at the end. The record is valid until
// the following call.
func (m *sortedRecs) next() ([]byte, error) {
	if m.mem != nil {
		if m.i == len(m.mem.spans) {
			return nil, nil
		}
		sp := m.mem.spans[m.i]
		m.i++
		return m.mem.buf[sp.start:sp.end], nil
	}
	if len(m.heap) == 0 {
		return nil, nil
	}
	top := m.heap[0]
	m.last = append(m.last[:0], top.cur...)
	ok, err := top.read()
	if err != nil {
		return nil, err
	}
	if ok {
		heap.Fix(&m.heap, 0)
	} else {
		heap.Pop(&m.heap)
	}
	return m.last, nil
}

type runReader struct {
	r   *bufio.Reader
	cur []byte
}

func (r *runReader) read() (bool, error) {
	n, err := binary.ReadUvarint(r.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read sort run: %w", err)
	}
	if cap(r.cur) < int(n) {
		r.cur = make([]byte, n)
	}
	r.cur = r.cur[:n]
	if _, err := io.ReadFull(r.r, r.cur); err != nil {
		return false, fmt.Errorf("read sort run: %w", err)
	}
	return true, nil
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i].cur, h[j].cur) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}
