package live

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/events"
)

// frame is one event of a source, rendered once for every client: the
// single-source form (id: <lastSeq>) and the multi-source form
// (id: <sourceId>:<lastSeq>).
type frame struct {
	source      string
	first, last uint64
	single      []byte
	multi       []byte
}

// render builds the frames of a CloudEvent body (one line of JSON).
func render(source string, ev events.CloudEvent, body []byte) *frame {
	d := ev.Data
	seq := strconv.FormatUint(d.LastSeq, 10)
	return &frame{
		source: source, first: d.FirstSeq, last: d.LastSeq,
		single: sseEvent("contents-changed", seq, body),
		multi:  sseEvent("contents-changed", source+":"+seq, body),
	}
}

func sseEvent(name, id string, data []byte) []byte {
	b := make([]byte, 0, len(name)+len(id)+len(data)+32)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\nid: "...)
	b = append(b, id...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// client is one SSE connection's queue. The hub never blocks on it: when
// the queue is full the client is dropped (gone closes) and reconnects
// with its Last-Event-ID, so a slow reader costs at most its queue.
type client struct {
	ch   chan *frame
	gone chan struct{}
	once sync.Once
}

func newClient(buffer int) *client {
	return &client{ch: make(chan *frame, buffer), gone: make(chan struct{})}
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

// send queues f; false when the client is (now) dropped.
func (c *client) send(f *frame) bool {
	select {
	case <-c.gone:
		return false
	default:
	}
	select {
	case c.ch <- f:
		return true
	default:
		c.drop()
		return false
	}
}

// hub is one source's subscription to the stream, shared by all its
// clients: an ordered consumer delivering new messages only. Ordered
// consumers recreate themselves after the last stream sequence delivered
// when NATS reconnects, so the feed has no gap.
type hub struct {
	s       *Server
	source  string
	subject string

	mu      sync.Mutex
	clients map[*client]struct{}
	cc      jetstream.ConsumeContext
	// dropped counts clients dropped for a full queue (for tests and logs).
	dropped int
}

// add subscribes c, starting the source's consumer first if it is not
// running: what JetStream stores from then on reaches c.
func (h *hub) add(ctx context.Context, c *client) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cc == nil {
		if err := h.start(ctx); err != nil {
			return err
		}
	}
	h.clients[c] = struct{}{}
	return nil
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// start creates the ordered consumer. Called with h.mu held.
func (h *hub) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := h.s.js.OrderedConsumer(ctx, h.s.opts.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{h.subject},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("subscribe to %s on stream %s: %w", h.subject, h.s.opts.Stream, err)
	}
	cc, err := cons.Consume(h.deliver, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		h.s.log.Debug("live: consumer error", "source", h.source, "err", err)
	}))
	if err != nil {
		return fmt.Errorf("consume %s on stream %s: %w", h.subject, h.s.opts.Stream, err)
	}
	h.cc = cc
	return nil
}

// deliver fans one stored event out to every client.
func (h *hub) deliver(msg jetstream.Msg) {
	ev, err := events.Decode(msg.Data())
	if err != nil || ev.Data.SourceID != h.source {
		h.s.log.Warn("live: a message on the source's subject is not its event; skipped", "source", h.source, "err", err)
		return
	}
	f := render(h.source, ev, oneLine(msg.Data()))
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if !c.send(f) {
			delete(h.clients, c)
			h.dropped++
		}
	}
}

// stop ends the consumer.
func (h *hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cc != nil {
		h.cc.Stop()
		h.cc = nil
	}
}
