package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/imgly/syncer/providers"
)

// Update is what a watch found at one key once it had settled: the file's
// state, or that no file has the key any more.
type Update struct {
	Key    string
	Object providers.Object // the Stat of the key; zero when Gone
	Gone   bool
	// Sequencer orders the updates of one watch: strictly increasing, taken
	// from the wall clock (nanoseconds, zero-padded to 20 digits) when the
	// key was stat'ed, so it also stays ahead of what earlier processes
	// recorded. See Watch.
	Sequencer string
	// Seen is when the key was stat'ed.
	Seen time.Time
}

// WatchSink receives what a watch finds.
type WatchSink interface {
	// Apply commits updates (in order). An error leaves them to be tried
	// again.
	Apply(ctx context.Context, updates []Update) error
	// Known returns the keys recorded below prefix: what a directory that
	// disappeared held, to be checked one by one.
	Known(ctx context.Context, prefix string) ([]string, error)
	// Rescan asks for a scan of the source: the watch has missed changes
	// (its queue overflowed) or cannot watch every directory (the watch
	// limit was reached). It must not block.
	Rescan(reason string)
}

// Rescan reasons.
const (
	RescanOverflow   = "overflow"
	RescanWatchLimit = "watch_limit"
)

// WatchOptions configure Watch.
type WatchOptions struct {
	// Prefix limits the watch to the directories that can hold keys with it.
	Prefix string
	// Quiet is how long a key must see no event before it is stat'ed and
	// announced: a file still being written keeps producing events, so it
	// is announced once it is complete (fsnotify does not expose
	// IN_CLOSE_WRITE). Use the source's settle time.
	Quiet time.Duration
	Sink  WatchSink
	Log   *slog.Logger
	// Ready, if set, is called once the tree is watched: changes from then
	// on are seen.
	Ready func()

	// inject feeds errors into the loop as if fsnotify had reported them:
	// the test seam for a queue overflow, which cannot be provoked on
	// demand (fs.inotify.max_queued_events is system-wide).
	inject <-chan error
}

// applyBatch bounds the updates handed to the sink at once (a directory
// moved in may hold many files).
const applyBatch = 1000

// Watch watches the provider's directory tree with inotify (fsnotify) until
// ctx ends, and hands each key that changed to o.Sink once it has been quiet
// for o.Quiet: its current state as Stat sees it (the key, links and the
// root's confinement exactly as a listing has them, so a scan after it
// changes nothing), or Gone. New directories are watched as they appear and
// what they hold is announced; a directory removed or moved away has each
// of its recorded keys checked, and so deleted. A queue overflow, or the
// system's watch limit, asks the sink for a scan.
//
// Updates of one watch are decided in one goroutine from a Stat made after
// the last event of the key, so a later update always describes a later
// state; their sequencers say so to the catalog. Any change after a Stat
// produces another event, so the last update of a key is its final state.
func (p *Provider) Watch(ctx context.Context, o WatchOptions) error {
	if o.Sink == nil {
		return errors.New("local: watch: no sink")
	}
	if o.Log == nil {
		o.Log = p.log
	}
	// A large buffer between fsnotify's reader and this loop: a burst is
	// read off the kernel's queue at once instead of overflowing it.
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("local: watch %s: %w", p.dir, err)
	}
	defer fw.Close()
	w := &watch{p: p, o: o, fw: fw, dirs: map[string]struct{}{}, pending: map[string]time.Time{}}
	if err := fw.Add(p.dir); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			w.limitReached(err)
			<-ctx.Done()
			return nil
		}
		return fmt.Errorf("local: watch %s: %w", p.dir, err)
	}
	w.dirs["."] = struct{}{}
	w.addTree(ctx, ".", false)
	if o.Ready != nil {
		o.Ready()
	}
	return w.loop(ctx)
}

type watch struct {
	p  *Provider
	o  WatchOptions
	fw *fsnotify.Watcher
	// dirs are the watched directories, as paths below the root ("." is
	// the root).
	dirs map[string]struct{}
	// pending are the keys to stat, with when (their last event + Quiet).
	pending map[string]time.Time
	lastSeq int64
	// overflowed and limited make those warnings once per watch.
	overflowed, limited bool
}

func (w *watch) loop(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fw.Events:
			if !ok {
				return nil
			}
			w.event(ctx, ev)
		case err, ok := <-w.fw.Errors:
			if !ok {
				return nil
			}
			w.fsError(ctx, err)
		case err := <-w.o.inject:
			w.fsError(ctx, err)
		case <-timer.C:
			armed = false
			w.flush(ctx)
		}
		// Events already queued are taken before the timer is looked at:
		// a burst is one flush.
		if !armed && len(w.pending) > 0 {
			timer.Reset(time.Until(w.nextDue()))
			armed = true
		}
	}
}

func (w *watch) nextDue() time.Time {
	var next time.Time
	for _, due := range w.pending {
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// rel is the path below the root of an event's name ("." for the root).
func (w *watch) rel(name string) (string, bool) {
	if name == w.p.dir {
		return ".", true
	}
	r, ok := strings.CutPrefix(name, w.p.dir+string(filepath.Separator))
	return filepath.ToSlash(r), ok
}

// keyOfPath is the key of a path below the root: each component as the
// listing spells it.
func keyOfPath(rel string) string {
	comps := strings.Split(rel, "/")
	for i, c := range comps {
		comps[i] = keyOf(c)
	}
	return strings.Join(comps, "/")
}

// wanted reports whether the key may be, or a directory with it may hold,
// a key with the watch's prefix.
func (w *watch) wanted(key string) bool {
	return strings.HasPrefix(key, w.o.Prefix) || strings.HasPrefix(w.o.Prefix, key+"/")
}

func (w *watch) event(ctx context.Context, ev fsnotify.Event) {
	rel, ok := w.rel(ev.Name)
	if !ok {
		return
	}
	if rel == "." {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			w.o.Log.Warn("local: watched directory removed or moved; changes are seen by scans only", "dir", w.p.dir)
		}
		return
	}
	key := keyOfPath(rel)
	if !w.wanted(key) {
		return
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if _, ok := w.dirs[rel]; ok {
			w.dropTree(rel)
			w.checkKnown(ctx, key+"/")
			return
		}
		w.touch(key)
		return
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := w.p.root.Lstat(rel); err == nil && fi.IsDir() {
			// A directory made or moved in: watch it, and announce what
			// it already holds (files written before its watch existed).
			// It may be watched already — a walk after an overflow can
			// reach it before its own event — and its files must still
			// be announced.
			w.addTree(ctx, rel, true)
			return
		}
	}
	if _, ok := w.dirs[rel]; ok {
		return // a watched directory's own attributes
	}
	w.touch(key)
}

// touch (re)schedules key's stat for Quiet from now.
func (w *watch) touch(key string) {
	if strings.HasPrefix(key, w.o.Prefix) {
		w.pending[key] = time.Now().Add(w.o.Quiet)
	}
}

// checkKnown schedules a stat of every recorded key below prefix.
func (w *watch) checkKnown(ctx context.Context, prefix string) {
	keys, err := w.o.Sink.Known(ctx, prefix)
	if err != nil {
		w.o.Log.Warn("local: watch: keys of a removed directory not read; the next scan deletes them",
			"prefix", prefix, "err", err)
		return
	}
	for _, k := range keys {
		w.touch(k)
	}
}

// addTree watches the directory rel and every directory below it (not
// through links: the listing does not descend them either), and with
// files set schedules each file's stat. Directories already watched are
// kept as they are.
func (w *watch) addTree(ctx context.Context, rel string, files bool) {
	err := fs.WalkDir(w.p.root.FS(), rel, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // vanished or unreadable: its events, or the scan, tell
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		key := ""
		if name != "." {
			key = keyOfPath(name)
			if !w.wanted(key) {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
		}
		if !d.IsDir() {
			if files {
				w.touch(key)
			}
			return nil
		}
		if _, ok := w.dirs[name]; ok {
			return nil
		}
		if err := w.fw.Add(path.Join(filepath.ToSlash(w.p.dir), name)); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				w.limitReached(err)
				return fs.SkipAll
			}
			return fs.SkipDir // gone meanwhile
		}
		w.dirs[name] = struct{}{}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		w.o.Log.Warn("local: watch: directory not walked", "dir", path.Join(w.p.dir, rel), "err", err)
	}
}

// dropTree forgets the directory rel and those below it: it is gone, or
// elsewhere (inotify follows a moved directory, so its old watches would
// report the new place under the old names).
func (w *watch) dropTree(rel string) {
	for d := range w.dirs {
		if d == rel || strings.HasPrefix(d, rel+"/") {
			delete(w.dirs, d)
			w.fw.Remove(path.Join(filepath.ToSlash(w.p.dir), d)) //nolint:errcheck // already gone is fine
		}
	}
}

func (w *watch) fsError(ctx context.Context, err error) {
	if !errors.Is(err, fsnotify.ErrEventOverflow) {
		w.o.Log.Warn("local: watch error", "dir", w.p.dir, "err", err)
		return
	}
	level := slog.LevelDebug
	if !w.overflowed {
		w.overflowed, level = true, slog.LevelWarn
	}
	w.o.Log.Log(ctx, level, "local: watch queue overflowed; scanning the source instead", "dir", w.p.dir)
	w.o.Sink.Rescan(RescanOverflow)
	// Directories made while events were lost are not watched yet.
	w.addTree(ctx, ".", false)
}

func (w *watch) limitReached(err error) {
	if !w.limited {
		w.limited = true
		w.o.Log.Warn("local: inotify watch limit reached (fs.inotify.max_user_watches); "+
			"directories beyond it are seen by scans only", "dir", w.p.dir, "err", err)
	}
	w.o.Sink.Rescan(RescanWatchLimit)
}

// sequencer is the wall clock in nanoseconds, made strictly increasing.
func (w *watch) sequencer(now time.Time) string {
	w.lastSeq = max(now.UnixNano(), w.lastSeq+1)
	s := strconv.FormatInt(w.lastSeq, 10)
	return strings.Repeat("0", max(0, 20-len(s))) + s
}

// flush stats the keys that are due and hands them to the sink.
func (w *watch) flush(ctx context.Context) {
	now := time.Now()
	var ups []Update
	for key, due := range w.pending {
		if due.After(now) {
			continue
		}
		delete(w.pending, key)
		seen := time.Now()
		o, err := w.p.Stat(ctx, key)
		u := Update{Key: key, Object: o, Sequencer: w.sequencer(seen), Seen: seen}
		switch {
		case errors.Is(err, providers.ErrNotFound):
			u.Object, u.Gone = providers.Object{Key: key}, true
		case err != nil:
			// Not knowable now: the scan decides it.
			w.o.Log.Debug("local: watch: stat failed", "key", key, "err", err)
			continue
		}
		ups = append(ups, u)
	}
	for len(ups) > 0 && ctx.Err() == nil {
		n := min(len(ups), applyBatch)
		if err := w.o.Sink.Apply(ctx, ups[:n]); err != nil {
			w.o.Log.Warn("local: watch: changes not committed; trying again", "n", n, "err", err)
			for _, u := range ups {
				w.pending[u.Key] = time.Now().Add(max(w.o.Quiet, time.Second))
			}
			return
		}
		ups = ups[n:]
	}
}
