package live

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/providers"
)

// Only what the stream stores reaches a client: a message JetStream
// refuses (here for a wrong expected sequence) is seen by a plain core
// NATS subscriber on the subject, but never by SSE; a duplicate JetStream
// drops is sent once.
func TestOnlyStoredEvents(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.Open = true })
	s := e.open("/sources/a/events", nil)
	core, err := e.nc.SubscribeSync(events.Subject(testPrefix, "a"))
	if err != nil {
		t.Fatal(err)
	}
	refused := events.New("inst", "a", []catalog.Change{{Seq: 1, Op: catalog.Added, Object: providers.Object{Key: "x"}}}, time.Now())
	body, _ := json.Marshal(refused)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, events.Subject(testPrefix, "a"), body, jetstream.WithExpectLastSequence(999)); err == nil {
		t.Fatal("JetStream stored a message with a wrong expected last sequence")
	}
	if _, err := core.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("the core subscriber did not see the refused message: %v", err)
	}
	ev := e.publish("a", 1)
	again, _ := json.Marshal(ev)
	ack, err := e.js.Publish(ctx, events.Subject(testPrefix, "a"), again, jetstream.WithMsgID(ev.ID))
	if err != nil || !ack.Duplicate {
		t.Fatalf("republish: %v, duplicate %v", err, ack != nil && ack.Duplicate)
	}
	second := e.publish("a", 1)
	for _, want := range []string{ev.ID, second.ID} {
		p := s.next(false)
		got, err := events.Decode([]byte(p.Data))
		if err != nil || got.ID != want {
			t.Fatalf("got %q (%v), want %q", got.ID, err, want)
		}
	}
}

// A client that stops reading is dropped once its queue is full; the
// others get every event, in order, meanwhile.
func TestSlowClientDropped(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.Open = true
		o.Buffer = 8
		o.WriteTimeout = time.Second
	})
	fast := []*stream{e.open("/sources/a/events", nil), e.open("/events?sources=a,b", nil)}
	// The slow client: a raw connection that reads the response headers
	// and then nothing, so the server's writes block once the socket
	// buffers are full.
	// A small receive buffer, set before connecting so that the window
	// is negotiated for it, fills sooner.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) //nolint:errcheck
		})
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /sources/a/events HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(20 * time.Second)) //nolint:errcheck
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("slow client: %v %v", resp, err)
	}
	br := bufio.NewReader(resp.Body)
	// Events of ~200 KB: a few MB fill the socket buffers.
	const n = 60
	for range n {
		e.publish("a", 1500)
	}
	for i, s := range fast {
		for j := range n {
			p := s.next(false)
			if _, last := lastSeqOf(t, p); last != uint64(1500*(j+1)) {
				t.Fatalf("fast client %d: event %d has lastSeq %d", i, j, last)
			}
		}
	}
	// The slow client's stream ends (after what was already on its way):
	// the response is over, the connection may stay for the next request.
	got := 0
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "event: contents-changed") {
			got++
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the slow client's stream was not closed (%d events read)", got)
			}
			if !errors.Is(err, io.EOF) {
				t.Logf("slow client: %v", err)
			}
			break
		}
	}
	if got >= n {
		t.Fatalf("the slow client got all %d events: it was not dropped", got)
	}
	e.srv.sources["a"].hub.mu.Lock()
	dropped, clients := e.srv.sources["a"].hub.dropped, len(e.srv.sources["a"].hub.clients)
	e.srv.sources["a"].hub.mu.Unlock()
	if dropped != 1 || clients != 2 {
		t.Fatalf("dropped %d clients, %d still subscribed; want 1 and 2", dropped, clients)
	}
	t.Logf("the slow client got %d of %d events before it was dropped", got, n)
}
