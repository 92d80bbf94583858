package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/imgly/syncer/providers"
)

// recorder is a WatchSink keeping the state the updates describe (as a
// catalog would) and every update, in order.
type recorder struct {
	mu      sync.Mutex
	state   map[string]providers.Object
	log     []Update
	rescans []string
	changed chan struct{}
	lastSeq string
	bad     string // an update whose sequencer did not increase
}

func newRecorder() *recorder {
	return &recorder{state: map[string]providers.Object{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) Apply(_ context.Context, ups []Update) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range ups {
		if u.Sequencer <= r.lastSeq {
			r.bad = fmt.Sprintf("sequencer %s after %s", u.Sequencer, r.lastSeq)
		}
		r.lastSeq = u.Sequencer
		r.log = append(r.log, u)
		if u.Gone {
			delete(r.state, u.Key)
		} else {
			r.state[u.Key] = u.Object
		}
	}
	r.signal()
	return nil
}

func (r *recorder) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) Known(_ context.Context, prefix string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for k := range r.state {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func (r *recorder) Rescan(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rescans = append(r.rescans, reason)
	r.signal()
}

// until waits (10 s at most) for cond on the recorder's state.
func (r *recorder) until(t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("no %s within 10s; state %v, updates %v", what, r.keys(), r.log)
		}
	}
}

func (r *recorder) keys() []string {
	var ks []string
	for k, o := range r.state {
		ks = append(ks, fmt.Sprintf("%s:%d", k, o.Size))
	}
	sort.Strings(ks)
	return ks
}

type watched struct {
	p      *Provider
	rec    *recorder
	inject chan error
	root   string
}

// startWatch watches a new directory (prepare fills it first) until the
// test ends.
func startWatch(t *testing.T, quiet time.Duration, prefix string, prepare func(root string), opts ...Option) *watched {
	t.Helper()
	root := t.TempDir()
	if prepare != nil {
		prepare(root)
	}
	p, err := New(root, append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	w := &watched{p: p, rec: newRecorder(), inject: make(chan error), root: root}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- p.Watch(ctx, WatchOptions{
			Prefix: prefix, Quiet: quiet, Sink: w.rec, inject: w.inject, Ready: func() { close(ready) },
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
		if w.rec.bad != "" {
			t.Errorf("updates out of order: %s", w.rec.bad)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("watch ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("watch not ready within 10s")
	}
	return w
}

func write(t *testing.T, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func has(key string, size int64) func(*recorder) bool {
	return func(r *recorder) bool { o, ok := r.state[key]; return ok && o.Size == size }
}

func gone(keys ...string) func(*recorder) bool {
	return func(r *recorder) bool {
		for _, k := range keys {
			if _, ok := r.state[k]; ok {
				return false
			}
		}
		return true
	}
}

// sameAsListing checks that what the watch announced is exactly what a
// listing sees: the keys and their ETags, so a scan after it is a no-op.
func (w *watched) sameAsListing(t *testing.T, prefix string) {
	t.Helper()
	var listed []string
	if err := providers.Walk(context.Background(), w.p, prefix, func(pg providers.Page) error {
		for _, o := range pg.Objects {
			listed = append(listed, o.Key+" "+o.ETag)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	var seen []string
	for k, o := range w.rec.state {
		seen = append(seen, k+" "+o.ETag)
	}
	sort.Strings(seen)
	if fmt.Sprint(seen) != fmt.Sprint(listed) {
		t.Errorf("watch saw %q, listing has %q", seen, listed)
	}
}

func TestWatchDropModifyDelete(t *testing.T) {
	w := startWatch(t, 20*time.Millisecond, "", nil)
	name := filepath.Join(w.root, "sub", "ünï", "a b.jpg")
	write(t, name, "hello")
	w.rec.until(t, "added file", has("sub/ünï/a b.jpg", 5))
	write(t, name, "hello, world")
	w.rec.until(t, "modified file", has("sub/ünï/a b.jpg", 12))
	bad := filepath.Join(w.root, "bad-\xff.txt")
	write(t, bad, "x")
	w.rec.until(t, "non-UTF-8 name", has("bad-%FF.txt", 1))
	w.sameAsListing(t, "")
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	w.rec.until(t, "deletion", gone("sub/ünï/a b.jpg"))
	w.sameAsListing(t, "")
}

// A file appended to over 5 s is announced once, with its final size.
func TestWatchSlowWriteAnnouncedOnceComplete(t *testing.T) {
	w := startWatch(t, time.Second, "", nil)
	f, err := os.Create(filepath.Join(w.root, "slow.bin"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 1000)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for range 25 {
		<-tick.C // the writer's pace, not synchronisation
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w.rec.until(t, "complete file", has("slow.bin", 25000))
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	if len(w.rec.log) != 1 {
		t.Fatalf("updates %v, want one with the final size", w.rec.log)
	}
}

// Writing a temporary file and renaming it over the target announces the
// target's new content; the temporary name ends up gone.
func TestWatchAtomicRenameOver(t *testing.T) {
	w := startWatch(t, 20*time.Millisecond, "", func(root string) { write(t, filepath.Join(root, "doc.json"), "{}") })
	w.rec.until(t, "nothing", func(*recorder) bool { return true })
	tmp := filepath.Join(w.root, ".doc.json.tmp")
	write(t, tmp, `{"v":2}`)
	if err := os.Rename(tmp, filepath.Join(w.root, "doc.json")); err != nil {
		t.Fatal(err)
	}
	w.rec.until(t, "replaced file", has("doc.json", 7))
	w.rec.until(t, "no temporary file", gone(".doc.json.tmp"))
	w.sameAsListing(t, "")
}

// A directory moved in is walked; one moved out (or within) has its keys
// deleted; directories made inside a moved-in one are watched too.
func TestWatchDirectoryMoves(t *testing.T) {
	w := startWatch(t, 20*time.Millisecond, "", nil)
	outside := t.TempDir()
	for _, f := range []string{"d/a.jpg", "d/e/b.jpg", "d/e/f/c.jpg"} {
		write(t, filepath.Join(outside, f), f)
	}
	if err := os.Rename(filepath.Join(outside, "d"), filepath.Join(w.root, "in")); err != nil {
		t.Fatal(err)
	}
	w.rec.until(t, "moved-in files", func(r *recorder) bool {
		return has("in/a.jpg", 7)(r) && has("in/e/b.jpg", 9)(r) && has("in/e/f/c.jpg", 11)(r)
	})
	// The moved-in tree is watched: a file written deep inside is seen.
	write(t, filepath.Join(w.root, "in", "e", "f", "new.jpg"), "new")
	w.rec.until(t, "file in moved-in tree", has("in/e/f/new.jpg", 3))
	// Moved within the tree: old keys gone, new ones there, and the new
	// place is watched under its new name.
	if err := os.Rename(filepath.Join(w.root, "in", "e"), filepath.Join(w.root, "moved")); err != nil {
		t.Fatal(err)
	}
	w.rec.until(t, "moved within", func(r *recorder) bool {
		return gone("in/e/b.jpg", "in/e/f/c.jpg", "in/e/f/new.jpg")(r) && has("moved/b.jpg", 9)(r) && has("moved/f/new.jpg", 3)(r)
	})
	write(t, filepath.Join(w.root, "moved", "f", "later.jpg"), "later")
	w.rec.until(t, "file in renamed directory", has("moved/f/later.jpg", 5))
	w.sameAsListing(t, "")
	// Moved out: every key below it is deleted.
	if err := os.Rename(filepath.Join(w.root, "moved"), filepath.Join(outside, "back")); err != nil {
		t.Fatal(err)
	}
	w.rec.until(t, "moved-out keys deleted", gone("moved/b.jpg", "moved/f/c.jpg", "moved/f/new.jpg", "moved/f/later.jpg"))
	if err := os.RemoveAll(filepath.Join(w.root, "in")); err != nil {
		t.Fatal(err)
	}
	w.rec.until(t, "removed tree deleted", gone("in/a.jpg"))
	w.sameAsListing(t, "")
}

// Only the prefix is watched; links are what the listing makes of them.
func TestWatchPrefixAndLinks(t *testing.T) {
	w := startWatch(t, 20*time.Millisecond, "lib/", nil, WithFollowSymlinks(true))
	write(t, filepath.Join(w.root, "other", "x.jpg"), "x")
	write(t, filepath.Join(w.root, "lib", "target.jpg"), "target")
	if err := os.Symlink("target.jpg", filepath.Join(w.root, "lib", "link.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(w.root, "lib", "escape.jpg")); err != nil {
		t.Fatal(err)
	}
	w.rec.until(t, "link followed", has("lib/link.jpg", 6))
	w.rec.until(t, "target", has("lib/target.jpg", 6))
	w.rec.mu.Lock()
	for _, u := range w.rec.log {
		if !strings.HasPrefix(u.Key, "lib/") || u.Key == "lib/escape.jpg" && !u.Gone {
			t.Errorf("update %+v: outside the prefix or the root", u)
		}
	}
	w.rec.mu.Unlock()
	w.sameAsListing(t, "lib/")
}

// A queue overflow asks for a scan, and directories made meanwhile are
// watched again. The overflow is injected into the watch's loop: the
// kernel's queue length (fs.inotify.max_queued_events) is system-wide and
// cannot be made small for one test.
func TestWatchOverflowFallsBackToScan(t *testing.T) {
	w := startWatch(t, 20*time.Millisecond, "", nil)
	w.inject <- fsnotify.ErrEventOverflow
	w.rec.until(t, "rescan", func(r *recorder) bool { return len(r.rescans) == 1 && r.rescans[0] == RescanOverflow })
	write(t, filepath.Join(w.root, "after", "x.jpg"), "x")
	w.rec.until(t, "file after overflow", has("after/x.jpg", 1))
}
