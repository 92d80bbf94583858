// Package examples_test runs the examples the README points at, so that
// they cannot rot: examples/subscriber against a running syncer, the
// README's snippets (readme_test.go, which also checks every fenced block
// of README.md), and examples/editor in a real browser (editor_test.go).
package examples_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/imgly/syncer/internal/livetest"
)

// TestSubscriber: the example prints the event of a change made after it
// started, and none of those before.
func TestSubscriber(t *testing.T) {
	node := livetest.Node(t, "@nats-io/jetstream", "@nats-io/transport-node")
	s := livetest.Start(t, livetest.Options{Sources: []string{"media"}})
	nc, err := nats.Connect(s.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	published, err := nc.SubscribeSync("syncer.changed.media")
	if err != nil {
		t.Fatal(err)
	}
	s.Put(t, "media", "old/before-start.png", []byte("old"), "image/png")
	if _, err := published.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("the event of the first upload: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := rootDir(t, "subscriber/subscriber.mjs")
	cmd := exec.CommandContext(ctx, node, "subscriber.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NATS_URL="+s.NATSURL, "SOURCE=media")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }() //nolint:errcheck // killed on purpose
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(what string) string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("subscriber ended before %s; stderr:\n%s", what, stderr.String())
			}
			return l
		case <-ctx.Done():
			t.Fatalf("no %s from the subscriber; stderr:\n%s", what, stderr.String())
		}
		return ""
	}
	if l := next("start line"); l != "listening on syncer.changed.media" {
		t.Fatalf("first line %q", l)
	}
	s.Put(t, "media", "new/after-start.png", []byte("new"), "image/png")
	l := next("event line")
	if l != "media #2 added new/after-start.png" {
		t.Fatalf("subscriber printed %q, want the new upload only (seq 2); stderr:\n%s", l, stderr.String())
	}
}
