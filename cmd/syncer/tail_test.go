package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/internal/testkit"
)

// eventStream is a JetStream stream as syncer creates it, on a fresh
// server, for tail to read.
type eventStream struct {
	n  *testkit.NATS
	js jetstream.JetStream
}

func newEventStream(t *testing.T) *eventStream {
	t.Helper()
	n := testkit.StartNATS(t, t.TempDir(), 0)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SYNCER", Subjects: []string{"syncer.changed.>"}}); err != nil {
		t.Fatal(err)
	}
	return &eventStream{n: n, js: js}
}

func (s *eventStream) publish(t *testing.T, source string, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.js.Publish(ctx, "syncer.changed."+source, fmt.Appendf(nil, `{"source":%q,"i":%d}`, source, i)); err != nil {
		t.Fatal(err)
	}
}

// readLines reads want lines from p's stdout, each within d.
func readLines(t *testing.T, p *proc, want int, d time.Duration) []string {
	t.Helper()
	var got []string
	for len(got) < want {
		line, ok := p.stdout.next(d)
		if !ok {
			t.Fatalf("after %q: no further line within %v; stderr: %s", got, d, p.stderr)
		}
		got = append(got, line)
	}
	return got
}

// TestTailFollowsWhenIdle: 45 s without an event (the old tail gave up
// after 30 s) and it still prints the next one, and SIGTERM exits 0.
func TestTailFollowsWhenIdle(t *testing.T) {
	t.Parallel()
	s := newEventStream(t)
	p := start(t, nil, "events", "tail", "--nats", s.n.URL)
	select {
	case <-p.done:
		t.Fatalf("tail exited %d while idle; stderr: %s", p.code, p.stderr)
	case <-time.After(45 * time.Second): // the idle period itself is the test
	}
	s.publish(t, "a", 1)
	if got := readLines(t, p, 1, 15*time.Second); got[0] != `{"source":"a","i":1}` {
		t.Errorf("event %q", got[0])
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr: %s", code, p.stderr)
	}
}

func TestTailCountSourceAndSince(t *testing.T) {
	t.Parallel()
	s := newEventStream(t)
	for i := 1; i <= 3; i++ {
		s.publish(t, "a", i)
	}
	s.publish(t, "b", 4)
	// Stream times are the server's; the server runs in this process, so
	// a mark taken between publishes separates them.
	time.Sleep(20 * time.Millisecond) // a distinct timestamp for the mark, not synchronisation
	mark := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	s.publish(t, "a", 5)

	code, stdout, stderr := runCLI(t, "events", "tail", "--nats", s.n.URL, "--all", "-n", "2")
	if code != 0 || stdout != "{\"source\":\"a\",\"i\":1}\n{\"source\":\"a\",\"i\":2}\n" {
		t.Errorf("--all -n 2: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "events", "tail", "--nats", s.n.URL, "--all", "--source", "b", "--count", "1")
	if code != 0 || stdout != "{\"source\":\"b\",\"i\":4}\n" {
		t.Errorf("--source b: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "events", "tail", "--nats", s.n.URL, "--since", mark.Format(time.RFC3339Nano), "-n", "1")
	if code != 0 || stdout != "{\"source\":\"a\",\"i\":5}\n" {
		t.Errorf("--since RFC3339: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "events", "tail", "--nats", s.n.URL, "--since", "1h", "-n", "5")
	if code != 0 || strings.Count(stdout, "\n") != 5 || !strings.HasPrefix(stdout, `{"source":"a","i":1}`) {
		t.Errorf("--since 1h: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// --config gives the server; the flag's default does not override it.
	path := writeConfig(t, fmt.Sprintf("nats: {url: %q}\n", s.n.URL))
	code, stdout, stderr = runCLI(t, "events", "tail", "--config", path, "--all", "-n", "1")
	if code != 0 || stdout != "{\"source\":\"a\",\"i\":1}\n" {
		t.Errorf("--config: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestTailSurvivesNATSRestart: NATS away at the start, then restarted
// under the tail; it keeps following.
func TestTailSurvivesNATSRestart(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	store := t.TempDir()
	p := start(t, nil, "events", "tail", "--nats", fmt.Sprintf("nats://127.0.0.1:%d", port), "--all")

	n := testkit.StartNATS(t, store, port)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SYNCER", Subjects: []string{"syncer.changed.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "syncer.changed.a", []byte(`{"i":1}`)); err != nil {
		t.Fatal(err)
	}
	readLines(t, p, 1, 20*time.Second)
	nc.Close()
	n.Shutdown()

	n = testkit.StartNATS(t, store, port)
	nc, err = nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = jetstream.New(nc)
	if _, err := js.Publish(ctx, "syncer.changed.a", []byte(`{"i":2}`)); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, p, 1, 30*time.Second); got[0] != `{"i":2}` {
		t.Errorf("after the restart: %q (want only the new event)", got[0])
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit %d; stderr: %s", code, p.stderr)
	}
}
