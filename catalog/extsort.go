package catalog

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// extSort sorts byte records (a tag byte and a key) in bounded memory:
// records are gathered into one of two buffers of half the budget each;
// a full one is sorted and written as a run to a temporary file by a
// goroutine of its own while the other fills (the build then uses both of
// a machine's cores), and sorted merges the runs. A sort that fits one
// buffer never touches the disk. The files are unlinked as soon as they
// are created, so a crash leaves nothing behind.
type extSort struct {
	dir    string
	budget int

	cur     *recBuf
	free    chan *recBuf // the buffers not being filled or spilled
	spilled int          // spills begun
	wg      sync.WaitGroup

	mu   sync.Mutex // guards runs and err, written by the spills
	runs []*os.File
	err  error
}

// recBuf holds records: their bytes and, in spans, where each one is.
type recBuf struct {
	buf   []byte
	spans []span
}

type span struct{ start, end uint32 }

func (b *recBuf) rec(i int) []byte { return b.buf[b.spans[i].start:b.spans[i].end] }

func (b *recBuf) sort() {
	slices.SortFunc(b.spans, func(x, y span) int {
		return bytes.Compare(b.buf[x.start:x.end], b.buf[y.start:y.end])
	})
}

// add adds a record: tag, then parts. Each buffer's bytes and spans are allocated once at
// their full size: grown by appending, they would hold up to twice the
// budget while the old arrays wait for the collector.
func (s *extSort) add(tag byte, parts ...[]byte) error {
	if s.cur == nil {
		s.free = make(chan *recBuf, 2)
		for range 2 {
			half := s.budget / 2
			s.free <- &recBuf{buf: make([]byte, 0, half*3/4), spans: make([]span, 0, half/4/8)}
		}
		s.cur = <-s.free
	}
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	b := s.cur
	if len(b.buf)+n > cap(b.buf) || len(b.spans) == cap(b.spans) {
		if err := s.spill(); err != nil {
			return err
		}
		b = s.cur
	}
	start := len(b.buf)
	b.buf = append(b.buf, tag)
	for _, p := range parts {
		b.buf = append(b.buf, p...)
	}
	b.spans = append(b.spans, span{uint32(start), uint32(len(b.buf))})
	return nil
}

// spill hands the current buffer to a goroutine that sorts it and writes
// it as a run, and takes the other buffer, waiting for its spill if it is
// still being written.
func (s *extSort) spill() error {
	b := s.cur
	if len(b.spans) > 0 {
		s.spilled++
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := s.writeRun(b)
			b.buf, b.spans = b.buf[:0], b.spans[:0]
			s.free <- b
			if err != nil {
				s.mu.Lock()
				s.err = cmp.Or(s.err, err)
				s.mu.Unlock()
			}
		}()
		s.cur = <-s.free
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *extSort) writeRun(b *recBuf) error {
	b.sort()
	f, err := os.CreateTemp(s.dir, ".ixsort-*")
	if err != nil {
		return fmt.Errorf("sort run: %w", err)
	}
	// Unlinked at once: the open file stays readable until closed.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return fmt.Errorf("sort run: %w", err)
	}
	s.mu.Lock()
	s.runs = append(s.runs, f)
	s.mu.Unlock()
	w := bufio.NewWriterSize(f, 256<<10)
	var lenBuf [binary.MaxVarintLen32]byte
	for i := range b.spans {
		r := b.rec(i)
		n := binary.PutUvarint(lenBuf[:], uint64(len(r)))
		if _, err := w.Write(lenBuf[:n]); err != nil {
			return fmt.Errorf("write sort run: %w", err)
		}
		if _, err := w.Write(r); err != nil {
			return fmt.Errorf("write sort run: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write sort run: %w", err)
	}
	return nil
}

// sorted returns the records in order, merged by a goroutine of its own in
// batches, until ctx ends. No record may be added after it.
func (s *extSort) sorted(ctx context.Context) (*sortedRecs, error) {
	if s.cur == nil { // nothing was added
		return &sortedRecs{}, nil
	}
	if s.spilled == 0 {
		// Everything fits one buffer: sorted in memory, no merge.
		s.cur.sort()
		return &sortedRecs{batch: s.cur}, nil
	}
	if err := s.spill(); err != nil {
		return nil, err
	}
	s.wg.Wait()
	if s.err != nil {
		return nil, s.err
	}
	s.cur = nil
	var h runHeap
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
			h = append(h, r)
		}
	}
	heap.Init(&h)
	ctx, cancel := context.WithCancel(ctx)
	m := &sortedRecs{batches: make(chan mergeBatch, 2), cancel: cancel}
	go h.merge(ctx, m.batches)
	return m, nil
}

func (s *extSort) close() {
	s.wg.Wait()
	for _, f := range s.runs {
		f.Close()
	}
	s.runs = nil
}

// sortedRecs yields sorted records: from one buffer sorted in memory, or
// in batches from the merge.
type sortedRecs struct {
	batch   *recBuf
	i       int
	batches chan mergeBatch // nil: in memory, or drained
	cancel  func()
}

// stop ends the merge and waits for it, so that the runs can be closed.
func (m *sortedRecs) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	if m.batches != nil {
		for range m.batches {
		}
	}
}

type mergeBatch struct {
	b   *recBuf
	err error
}

// next returns the next record, nil at the end. Records from a merge keep
// their bytes (bbolt may hold on to them until its commit); those sorted
// in memory are the buffer's own, valid as long as the sort is.
func (m *sortedRecs) next() ([]byte, error) {
	for m.batch == nil || m.i == len(m.batch.spans) {
		if m.batches == nil {
			return nil, nil
		}
		mb, ok := <-m.batches
		if !ok {
			m.batches, m.batch = nil, nil
			return nil, nil
		}
		if mb.err != nil {
			return nil, mb.err
		}
		m.batch, m.i = mb.b, 0
	}
	r := m.batch.rec(m.i)
	m.i++
	return r, nil
}

// mergeBatchRecs is how many records a merge batch holds.
const mergeBatchRecs = 4096

// merge sends the runs' records in order, in batches of fresh buffers,
// and closes out at the end, after an error, or when ctx ends.
func (h runHeap) merge(ctx context.Context, out chan<- mergeBatch) {
	defer close(out)
	send := func(mb mergeBatch) bool {
		select {
		case out <- mb:
			return true
		case <-ctx.Done():
			return false
		}
	}
	b := &recBuf{}
	for len(h) > 0 {
		top := h[0]
		start := len(b.buf)
		b.buf = append(b.buf, top.cur...)
		b.spans = append(b.spans, span{uint32(start), uint32(len(b.buf))})
		ok, err := top.read()
		if err != nil {
			send(mergeBatch{err: err})
			return
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
		if len(b.spans) == mergeBatchRecs {
			if !send(mergeBatch{b: b}) {
				return
			}
			b = &recBuf{buf: make([]byte, 0, len(b.buf)), spans: make([]span, 0, mergeBatchRecs)}
		}
	}
	if len(b.spans) > 0 {
		send(mergeBatch{b: b})
	}
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
