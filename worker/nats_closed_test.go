package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
)

// A NATS connection closed for good (whatever gave up on it) ends Run with
// an error, so that the process exits non-zero and is restarted, instead
// of idling healthy while nothing is published.
func TestNATSClosedForGoodEndsRun(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	doc := fmt.Sprintf("nats: {url: %q}\ncatalog: {path: %q}\nhttp: {listen: \"off\"}\nsources: [{id: src, provider: local, path: %q, schedule: \"@every 1h\"}]\n",
		n.URL, t.TempDir(), t.TempDir())
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), FlushTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	w.nc.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "connection closed") {
			t.Fatalf("Run = %v, want an error saying the connection closed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the NATS connection closed")
	}
}

// Cancelling still returns nil: only a failure is an error.
func TestRunReturnsNilWhenCancelled(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	doc := fmt.Sprintf("nats: {url: %q}\ncatalog: {path: %q}\nhttp: {listen: \"off\"}\nsources: [{id: src, provider: local, path: %q, schedule: \"@every 1h\"}]\n",
		n.URL, t.TempDir(), t.TempDir())
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), FlushTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run = %v after its context ended", err)
	}
}

// A foreign stream owning syncer's subjects is a start-up error naming it,
// not a publisher retrying forever.
func TestStreamOwnedByAnotherEndsRun(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"syncer.>"}}); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf("nats: {url: %q}\ncatalog: {path: %q}\nhttp: {listen: \"off\"}\nsources: [{id: src, provider: local, path: %q, schedule: \"@every 1h\"}]\n",
		n.URL, t.TempDir(), t.TempDir())
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), FlushTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stream OTHER") {
			t.Fatalf("Run = %v, want an error naming stream OTHER", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
}
