package worker_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
)

// A file dropped into a local source reaches an SSE client as the event
// JetStream stored, with the id of its lastSeq.
func TestServerSentEvents(t *testing.T) {
	root := t.TempDir()
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, config.Source{ID: "pics", Provider: "local", Path: root})
	w := start(t, cfg)
	// The stream exists once the worker created it.
	orderedConsumer(t, n.URL, cfg.NATS.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"syncer.changed.pics"}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.HTTPAddr()+"/sources/pics/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := os.WriteFile(filepath.Join(root, "cat.png"), []byte("meow"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.scan(t, "pics")

	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var id, data string
	for data == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			if v, ok := strings.CutPrefix(l, "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(l, "data: "); ok {
				data = v
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no event within 20 s")
		}
	}
	ev, err := events.Decode([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Data.Changes) != 1 || ev.Data.Changes[0].Key != "cat.png" || id != "1" {
		t.Fatalf("id %q, event %+v", id, ev.Data)
	}
}
