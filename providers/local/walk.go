package local

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/imgly/syncer/providers"
)

// walker yields the regular files below root in byte order of their keys.
// Directory entries are sorted as if a directory's name ended in "/", which
// makes a depth-first walk produce keys in global byte order ("a.txt" <
// "a/b"). Only the directories on the current path are held in memory.
type walker struct {
	p       *Provider
	prefix  string
	lastKey string
	stack   []frame
	started bool
}

type frame struct {
	dir     string // key prefix of the directory: "" or "a/b/"
	fsdir   string // its path below the root: "." or "a/b"
	entries []entry
	i       int
}

type entry struct {
	key  string // the key component, with a trailing "/" for directories
	name string // the name in the file system
	info fs.FileInfo
}

func (w *walker) next() (providers.Object, bool, error) {
	if !w.started {
		w.started = true
		// Start at the deepest directory the prefix names completely.
		start, fsdir := "", "."
		if i := strings.LastIndexByte(w.prefix, '/'); i >= 0 {
			start = w.prefix[:i+1]
			if !fs.ValidPath(w.prefix[:i]) {
				return providers.Object{}, false, nil // no key has this prefix
			}
			var err error
			fsdir, err = w.p.fsPath(w.prefix[:i])
			if err == nil {
				err = w.p.realDir(fsdir)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return providers.Object{}, false, nil
			}
			if err != nil {
				return providers.Object{}, false, classify(fmt.Errorf("local: stat %s: %w", path.Join(w.p.dir, w.prefix[:i]), err))
			}
		}
		if err := w.push(start, fsdir); err != nil {
			return providers.Object{}, false, err
		}
	}
	for len(w.stack) > 0 {
		f := &w.stack[len(w.stack)-1]
		if f.i >= len(f.entries) {
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		e := f.entries[f.i]
		f.i++
		key := f.dir + e.key
		if strings.HasSuffix(e.key, "/") {
			if !w.mayContain(key) {
				continue
			}
			if err := w.push(key, path.Join(f.fsdir, e.name)); err != nil {
				return providers.Object{}, false, err
			}
			continue
		}
		if !strings.HasPrefix(key, w.prefix) || key <= w.lastKey {
			continue
		}
		w.lastKey = key
		o := object(key, e.info)
		o.Settling = w.p.settle > 0 && time.Since(o.LastModified) < w.p.settle
		return o, true, nil
	}
	return providers.Object{}, false, nil
}

// mayContain reports whether the subtree with key prefix dir can hold keys
// that are below the prefix and after lastKey.
func (w *walker) mayContain(dir string) bool {
	if !strings.HasPrefix(dir, w.prefix) && !strings.HasPrefix(w.prefix, dir) {
		return false
	}
	// Every key in the subtree starts with dir; if lastKey does not, the
	// whole subtree sorts on one side of it.
	return strings.HasPrefix(w.lastKey, dir) || dir > w.lastKey
}

// push reads the directory fsdir (key prefix dir) onto the stack. Entries
// are stat'ed through a root opened on the directory itself, one fstatat
// each; only link targets are resolved against the provider's root, which
// keeps them inside it.
func (w *walker) push(dir, fsdir string) error {
	sub, err := w.p.root.OpenRoot(fsdir)
	if errors.Is(err, fs.ErrNotExist) && dir != "" {
		return nil // vanished during the walk, or a prefix naming no directory
	}
	if err != nil {
		return classify(fmt.Errorf("local: read %s: %w", path.Join(w.p.dir, fsdir), err))
	}
	defer sub.Close()
	d, err := sub.Open(".")
	if err != nil {
		return classify(fmt.Errorf("local: read %s: %w", path.Join(w.p.dir, fsdir), err))
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return classify(fmt.Errorf("local: read %s: %w", path.Join(w.p.dir, fsdir), err))
	}
	entries := make([]entry, 0, len(names))
	for _, name := range names {
		info, err := sub.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return classify(fmt.Errorf("local: stat %s: %w", path.Join(w.p.dir, fsdir, name), err))
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			if !w.p.follow {
				continue
			}
			// Follow links to files inside the root; links to directories
			// could loop. A dangling or looping link, or one leading out of
			// the root, is no object; any other failure fails the listing
			// rather than reading as a deletion.
			target := path.Join(fsdir, name)
			if info, err = w.p.root.Stat(target); err != nil && skippableLink(err) {
				continue
			}
			if err != nil {
				return classify(fmt.Errorf("local: stat %s: %w", path.Join(w.p.dir, target), err))
			}
			if info.IsDir() {
				continue
			}
		}
		switch {
		case info.IsDir():
			entries = append(entries, entry{key: keyOf(name) + "/", name: name})
		case info.Mode().IsRegular():
			entries = append(entries, entry{key: keyOf(name), name: name, info: info})
		}
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].key != entries[j].key {
			return entries[i].key < entries[j].key
		}
		return entries[i].key == entries[i].name // the real name first
	})
	// A non-UTF-8 name whose encoding is a sibling's real name gives way.
	kept := entries[:0]
	for _, e := range entries {
		if len(kept) > 0 && e.key == kept[len(kept)-1].key {
			w.p.log.Warn("local: file skipped: its name is not UTF-8 and its key is taken by another file",
				"dir", path.Join(w.p.dir, fsdir), "key", dir+e.key)
			continue
		}
		kept = append(kept, e)
	}
	w.stack = append(w.stack, frame{dir: dir, fsdir: fsdir, entries: kept})
	return nil
}
