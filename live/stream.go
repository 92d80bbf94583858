package live

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/events"
)

// serve streams the events of the sources ids name to one client.
func (s *Server) serve(rw http.ResponseWriter, r *http.Request, ids []string, multi bool) {
	srcs, code, msg := s.lookup(r, ids)
	if code != 0 {
		writeError(rw, code, msg)
		return
	}
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = r.URL.Query().Get("lastEventId")
	}
	cursors, err := parseCursors(raw, ids, multi)
	if err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	w := newWriter(rw, s.opts.WriteTimeout, multi)
	h := rw.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	// Subscribed before the replay reads the stream: whatever is stored
	// after the replay's last read is in the client's queue, and what both
	// see is sent once (by its lastSeq).
	c := newClient(s.opts.Buffer)
	for _, src := range srcs {
		if err := src.hub.add(ctx, c); err != nil {
			s.log.Warn("live: events unavailable", "source", src.id, "err", err)
			// A 200 that ends at once, with a retry delay: EventSource
			// gives up for good on any other status.
			rw.WriteHeader(http.StatusOK)
			w.write([]byte("retry: 2000\n: events unavailable; retrying\n\n"))
			w.flush() //nolint:errcheck // the client went away
			return
		}
		defer src.hub.remove(c)
	}
	// The listener's ReadTimeout would end the request's context once it
	// passes: this request has no body, and lasts as long as the client.
	_ = w.rc.SetReadDeadline(time.Time{})
	rw.WriteHeader(http.StatusOK)
	if w.flush() != nil {
		return
	}
	floors := make(map[string]uint64, len(srcs))
	for _, src := range srcs {
		n, ok := cursors[src.id]
		if !ok {
			continue
		}
		floor, err := s.replay(ctx, w, src, n)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("live: replay failed; the client reconnects", "source", src.id, "err", err)
			}
			return
		}
		floors[src.id] = floor
	}
	if w.flush() != nil {
		return
	}
	s.stream(ctx, w, c, floors)
}

// stream sends queued events and heartbeats until the client leaves, is
// dropped, or a write fails.
func (s *Server) stream(ctx context.Context, w *writer, c *client, floors map[string]uint64) {
	tick := time.NewTicker(s.opts.Heartbeat)
	defer tick.Stop()
	send := func(f *frame) {
		if f.last > floors[f.source] {
			w.frame(f)
			floors[f.source] = f.last
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-c.gone:
			s.log.Debug("live: slow client dropped", "remote", w.remote)
			return
		case <-tick.C:
			w.write([]byte(": ping\n\n"))
		case f := <-c.ch:
			send(f)
			for n := len(c.ch); n > 0; n-- {
				send(<-c.ch)
			}
		}
		if w.flush() != nil {
			return
		}
	}
}

// writer writes to one client, each write under a fresh deadline, and
// remembers the first error.
type writer struct {
	rw      http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	multi   bool
	remote  string
	err     error
}

func newWriter(rw http.ResponseWriter, timeout time.Duration, multi bool) *writer {
	return &writer{rw: rw, rc: http.NewResponseController(rw), timeout: timeout, multi: multi}
}

func (w *writer) write(b []byte) {
	if w.err != nil {
		return
	}
	// ErrNotSupported without a connection of ours (mounted elsewhere).
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	_, w.err = w.rw.Write(b)
}

func (w *writer) frame(f *frame) {
	if w.multi {
		w.write(f.multi)
	} else {
		w.write(f.single)
	}
}

func (w *writer) flush() error {
	if w.err == nil {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
		w.err = w.rc.Flush()
	}
	return w.err
}

// parseCursors reads a Last-Event-ID: "<lastSeq>" on the single-source
// form (or the "<sourceId>:<lastSeq>" of the multi form); on the multi form a
// comma-joined list of "<sourceId>:<lastSeq>", one per source, any order.
// Sources of the request not named start with new events only; names of
// other sources are ignored (a client may keep one cursor for all its
// connections).
func parseCursors(raw string, ids []string, multi bool) (map[string]uint64, error) {
	out := map[string]uint64{}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return out, nil
	}
	bad := func(part string) error {
		want := `"<lastSeq>"`
		if multi {
			want = `a comma-joined list of "<sourceId>:<lastSeq>"`
		}
		return fmt.Errorf("Last-Event-ID %q: %q is not %s", raw, part, want)
	}
	if !multi && !strings.Contains(raw, ":") {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return nil, bad(raw)
		}
		out[ids[0]] = n
		return out, nil
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for _, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		id, seq, ok := strings.Cut(part, ":")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || id == "" || err != nil {
			return nil, bad(part)
		}
		if want[id] {
			out[id] = n
		}
	}
	return out, nil
}

// replay sends the events of src after lastSeq n that the stream holds,
// or a reset when some of them are gone (retention) or the stream does not
// know n (a catalog recreated, another stream). It returns the lastSeq the
// client is now at: queued events up to it are not sent again.
func (s *Server) replay(ctx context.Context, w *writer, src *source, n uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := s.js.Stream(ctx, s.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return s.reset(ctx, w, src, nil, n)
	}
	if err != nil {
		return 0, fmt.Errorf("look up stream %s: %w", s.opts.Stream, err)
	}
	st := stream.CachedInfo().State
	rd := reader{stream: stream, subject: src.hub.subject, source: src.id}
	m, err := rd.firstAfter(ctx, st.FirstSeq, st.LastSeq, n)
	if err != nil {
		return 0, err
	}
	if m == nil {
		return s.caughtUp(ctx, w, src, stream, n)
	}
	if m.first > n+1 {
		return s.reset(ctx, w, src, stream, n)
	}
	floor := n
	for i := 0; m != nil; i++ {
		if i == s.opts.MaxReplay {
			return s.reset(ctx, w, src, stream, n)
		}
		w.frame(m.frame)
		floor = m.last
		if m, err = rd.next(ctx, m.seq+1); err != nil {
			return 0, err
		}
	}
	return floor, w.err
}

// caughtUp handles a client the stream has nothing newer for: it is up to
// date, unless the stream's latest event is older than n (the client is
// ahead of the stream) or the stream holds none while the publisher has
// published past n (they all aged out).
func (s *Server) caughtUp(ctx context.Context, w *writer, src *source, stream jetstream.Stream, n uint64) (uint64, error) {
	last, ok, err := lastOf(ctx, stream, src)
	if err != nil {
		return 0, err
	}
	if ok && last < n {
		return s.reset(ctx, w, src, stream, n)
	}
	if !ok && s.opts.Published != nil {
		if p, known := s.opts.Published(src.id); known && p > n {
			return s.reset(ctx, w, src, stream, n)
		}
	}
	return n, nil
}

// reset tells the client to refresh everything; its id is the stream's
// latest lastSeq of the source, so a reconnect after it replays cleanly.
func (s *Server) reset(ctx context.Context, w *writer, src *source, stream jetstream.Stream, n uint64) (uint64, error) {
	var pos uint64
	if stream != nil {
		last, ok, err := lastOf(ctx, stream, src)
		if err != nil {
			return 0, err
		}
		if ok {
			pos = last
		}
	}
	if pos == 0 && s.opts.Published != nil {
		if p, known := s.opts.Published(src.id); known {
			pos = p
		}
	}
	seq := strconv.FormatUint(pos, 10)
	id := seq
	if w.multi {
		id = src.id + ":" + seq
	}
	data := fmt.Sprintf(`{"sourceId":%q,"lastSeq":%d,"after":%d}`, src.id, pos, n)
	w.write(sseEvent("reset", id, []byte(data)))
	return pos, w.err
}

// lastOf is the lastSeq of the stream's latest event of src.
func lastOf(ctx context.Context, stream jetstream.Stream, src *source) (uint64, bool, error) {
	m, err := stream.GetLastMsgForSubject(ctx, src.hub.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the last event of %s: %w", src.id, err)
	}
	ev, err := events.Decode(m.Data)
	if err != nil {
		return 0, false, nil
	}
	return ev.Data.LastSeq, true, nil
}

// stored is one event read back from the stream.
type stored struct {
	seq         uint64 // stream sequence
	first, last uint64
	frame       *frame
}

// reader reads one source's events from the stream by stream sequence.
type reader struct {
	stream  jetstream.Stream
	subject string
	source  string
}

// next is the source's first event at stream sequence seq or later; nil
// when there is none. Messages that are not its events are passed over.
func (rd reader) next(ctx context.Context, seq uint64) (*stored, error) {
	for {
		m, err := rd.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(rd.subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from stream sequence %d: %w", rd.subject, seq, err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil || ev.Data.SourceID != rd.source {
			seq = m.Sequence + 1
			continue
		}
		return &stored{seq: m.Sequence, first: ev.Data.FirstSeq, last: ev.Data.LastSeq,
			frame: render(rd.source, ev, oneLine(m.Data))}, nil
	}
}

// firstAfter finds the source's first event with lastSeq > n between
// stream sequences lo and hi by binary search (a source's events are in
// lastSeq order): a reconnect costs a few reads, not a scan of the stream.
func (rd reader) firstAfter(ctx context.Context, lo, hi, n uint64) (*stored, error) {
	lo = max(lo, 1)
	hi++ // search [lo, hi): the first sequence whose next event is past n
	var cand *stored
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := rd.next(ctx, mid)
		if err != nil {
			return nil, err
		}
		if m == nil || m.last > n {
			hi, cand = mid, m
			continue
		}
		lo = m.seq + 1
	}
	return cand, nil
}
