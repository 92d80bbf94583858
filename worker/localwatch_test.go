package worker_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

// startWatching runs a worker on cfg and waits until its local sources are
// watched.
func startWatching(t testing.TB, cfg *config.Config, opts worker.Options) *running {
	t.Helper()
	ready := make(chan string, len(cfg.Sources))
	opts.OnWatching = func(id string) { ready <- id }
	w := start(t, cfg, opts)
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("watch not in place within 20s")
	}
	return w
}

// writeFile writes body to root/name, making its directories.
func writeFile(t testing.TB, root, name, body string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Changes in a watched directory reach the stream without a scan (the
// schedule is an hour): a drop, an atomic replace, a directory moved in and
// out, a deletion. A scan afterwards finds nothing to change.
func TestLocalWatchEndToEnd(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	n := testkit.StartNATS(t, t.TempDir(), 0)
	settle := 50 * time.Millisecond
	cfg := testConfig(t, n.URL, config.Source{ID: "watched", Provider: "local", Path: root,
		Settle: &settle, Watch: new(true), Exclude: []string{"**/*.tmp"}})
	w := startWatching(t, cfg, worker.Options{})
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.watched")

	writeFile(t, root, "a b.jpg", "one")
	sub.expect(change{"added", "a b.jpg"})
	if c := sub.seen[0].Data.Changes[0]; c.Size != 3 || c.DetectedBy != "notification" {
		t.Errorf("change %+v, want size 3 detected by notification", c)
	}

	// Write a temporary file (excluded by the filters), rename it over.
	writeFile(t, root, "a b.jpg.tmp", "two, longer")
	if err := os.Rename(filepath.Join(root, "a b.jpg.tmp"), filepath.Join(root, "a b.jpg")); err != nil {
		t.Fatal(err)
	}
	sub.expect(change{"modified", "a b.jpg"})

	writeFile(t, outside, "d/x.jpg", "x")
	writeFile(t, outside, "d/e/y.jpg", "y")
	if err := os.Rename(filepath.Join(outside, "d"), filepath.Join(root, "in")); err != nil {
		t.Fatal(err)
	}
	got := sub.read(2, "added in/x.jpg, in/e/y.jpg")
	slices.SortFunc(got, func(a, b change) int { return compare(a.Key, b.Key) })
	if want := []change{{"added", "in/e/y.jpg"}, {"added", "in/x.jpg"}}; !slices.Equal(got, want) {
		t.Fatalf("moved in: %v, want %v", got, want)
	}
	if err := os.Rename(filepath.Join(root, "in"), filepath.Join(outside, "back")); err != nil {
		t.Fatal(err)
	}
	got = sub.read(2, "deleted in/x.jpg, in/e/y.jpg")
	slices.SortFunc(got, func(a, b change) int { return compare(a.Key, b.Key) })
	if want := []change{{"deleted", "in/e/y.jpg"}, {"deleted", "in/x.jpg"}}; !slices.Equal(got, want) {
		t.Fatalf("moved out: %v, want %v", got, want)
	}
	if err := os.Remove(filepath.Join(root, "a b.jpg")); err != nil {
		t.Fatal(err)
	}
	sub.expect(change{"deleted", "a b.jpg"})

	writeFile(t, root, "last.jpg", "last")
	sub.expect(change{"added", "last.jpg"})
	w.scan(t, "watched")
	w.drained(t)
	sub.none()
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
