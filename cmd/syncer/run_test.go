package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
)

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunPublishesAndStopsCleanly runs the worker command as a user would,
// drops a file, waits for its event, then interrupts it: exit 0.
func TestRunPublishesAndStopsCleanly(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "first.png"), []byte("png"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, fmt.Sprintf(`
nats: {url: %q}
catalog: {path: %q}
http: {listen: "127.0.0.1:0"}
events: {coalesceWindow: 10ms}
sources:
  - {id: assets, provider: local, path: %q, schedule: "@every 1s"}
`, n.URL, t.TempDir(), root))

	p := start(t, nil, "run", "--config", path)
	stderr := p.stderr

	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	var cons jetstream.Consumer
	for {
		cons, err = js.OrderedConsumer(deadline, "SYNCER", jetstream.OrderedConsumerConfig{})
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) || deadline.Err() != nil {
			t.Fatalf("consumer: %v; stderr: %s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // run creates the stream
	}
	want := []string{"added first.png", "added second.jpg"}
	var got []string
	for len(got) < len(want) {
		if len(got) == 1 {
			if err := os.WriteFile(filepath.Join(root, "second.jpg"), []byte("jpg"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m, err := cons.Next(jetstream.FetchMaxWait(15 * time.Second))
		if err != nil {
			t.Fatalf("after %v: %v; stderr: %s", got, err, stderr.String())
		}
		ev, err := events.Decode(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ev.Data.Changes {
			got = append(got, c.Op+" "+c.Key)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	if c := p.stop(t); c != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr: %s", c, stderr.String())
	}
}
