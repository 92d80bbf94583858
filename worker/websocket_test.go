package worker_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/worker"
)

// The embedded server's WebSocket listener: a client connecting over ws://
// without credentials reads syncer's events (core subscription and ordered
// JetStream consumer) but may neither publish on syncer's subjects nor
// delete the stream; origins outside allowedOrigins are refused.
func TestEmbeddedWebsocket(t *testing.T) {
	cfg := config.NATS{
		URL: "embedded", Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Stream: "SYNCER", SubjectPrefix: "syncer.changed",
		Websocket: config.Websocket{Listen: "127.0.0.1:0", AllowedOrigins: []string{"http://editor.example.com"}},
	}
	nc, e, err := worker.ConnectNATS(cfg, "syncer", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); e.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SYNCER", Subjects: []string{"syncer.changed.>"}}); err != nil {
		t.Fatalf("syncer's own connection: %v", err)
	}
	wsURL := e.Server.WebsocketURL()
	if !strings.HasPrefix(wsURL, "ws://127.0.0.1:") {
		t.Fatalf("websocket URL %s", wsURL)
	}
	bc, err := nats.Connect(wsURL)
	if err != nil {
		t.Fatalf("connect over %s: %v", wsURL, err)
	}
	defer bc.Close()
	core, err := bc.SubscribeSync("syncer.changed.>")
	if err != nil {
		t.Fatal(err)
	}
	bjs, _ := jetstream.New(bc)
	cons, err := bjs.OrderedConsumer(ctx, "SYNCER", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"syncer.changed.pics"},
	})
	if err != nil {
		t.Fatalf("ordered consumer over WebSocket: %v", err)
	}
	if err := bc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "syncer.changed.pics", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if m, err := core.NextMsg(10 * time.Second); err != nil || string(m.Data) != `{"n":1}` {
		t.Fatalf("core subscription: %v", err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil || string(m.Data()) != `{"n":1}` {
		t.Fatalf("ordered consumer: %v", err)
	}

	// Read-only: the server refuses publishing and deleting
	// the stream (refused publishes get no answer: each attempt waits
	// out its short deadline).
	for what, try := range map[string]func(context.Context) error{
		"published an event": func(c context.Context) error {
			_, err := bjs.Publish(c, "syncer.changed.pics", []byte("forged"))
			return err
		},
		"deleted the stream": func(c context.Context) error { return bjs.DeleteStream(c, "SYNCER") },
	} {
		c, cancel := context.WithTimeout(ctx, time.Second)
		if err := try(c); err == nil {
			t.Errorf("a WebSocket client %s", what)
		}
		cancel()
	}
	s, err := js.Stream(ctx, "SYNCER")
	if err != nil || s.CachedInfo().State.Msgs != 1 {
		t.Fatalf("stream after the refused writes: %v, %+v", err, s.CachedInfo().State)
	}

	// A page of another origin is refused at the handshake.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http"+strings.TrimPrefix(wsURL, "ws"), nil)
	for k, v := range map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example.com",
	} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: status %d, want 403", resp.StatusCode)
	}
}
