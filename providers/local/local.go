// Package local is the zero-setup provider: a directory tree, where a key is
// the slash path of a regular file relative to the root.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/imgly/syncer/providers"
)

// DefaultPageSize is how many files one ListPage returns.
const DefaultPageSize = 1000

// Provider lists a directory tree in key (byte) order.
type Provider struct {
	root     string
	pageSize int

	// A listing continues where the previous page stopped: re-walking the
	// tree for every page would read a large directory once per page.
	mu   sync.Mutex
	last *walker
}

var _ providers.Provider = (*Provider)(nil)

// Option configures a Provider.
type Option func(*Provider)

// WithPageSize sets the number of files per page.
func WithPageSize(n int) Option { return func(p *Provider) { p.pageSize = n } }

// New returns a provider over the directory root, which must exist.
func New(root string, opts ...Option) (*Provider, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local: %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, providers.Classify(providers.ErrBucketNotFound, fmt.Errorf("local: %w", err))
	}
	if !fi.IsDir() {
		return nil, providers.Classify(providers.ErrBucketNotFound, fmt.Errorf("local: %s is not a directory", abs))
	}
	p := &Provider{root: abs, pageSize: DefaultPageSize}
	for _, o := range opts {
		o(p)
	}
	if p.pageSize < 1 {
		p.pageSize = DefaultPageSize
	}
	return p, nil
}

// KeyOrder is the order the adapter lists keys in (the adapter sorts names bytewise). The
// catalog stores keys by it, so it is also what opens a catalog without the
// adapter.
const KeyOrder = providers.ByteOrder

// Order implements providers.Provider.
func (p *Provider) Order() providers.Order { return KeyOrder }

// Close implements providers.Provider.
func (p *Provider) Close() error { return nil }

// ListPage implements providers.Provider. The token is the last key of the
// previous page.
func (p *Provider) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	p.mu.Lock()
	w := p.last
	p.last = nil
	p.mu.Unlock()
	if w == nil || w.prefix != prefix || w.lastKey != token || token == "" {
		w = newWalker(p.root, prefix, token)
	}
	var page providers.Page
	for len(page.Objects) < p.pageSize {
		if err := ctx.Err(); err != nil {
			return providers.Page{}, err
		}
		o, ok, err := w.next()
		if err != nil {
			return providers.Page{}, err
		}
		if !ok {
			return page, nil
		}
		page.Objects = append(page.Objects, o)
	}
	page.Next = w.lastKey
	p.mu.Lock()
	p.last = w
	p.mu.Unlock()
	return page, nil
}

// Stat implements providers.Provider.
func (p *Provider) Stat(ctx context.Context, key string) (providers.Object, error) {
	if !fs.ValidPath(key) {
		return providers.Object{}, providers.Classify(providers.ErrNotFound, fmt.Errorf("local: invalid key %q", key))
	}
	fi, err := os.Stat(filepath.Join(p.root, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return providers.Object{}, providers.Classify(providers.ErrNotFound, fmt.Errorf("local: stat %q: not found", key))
	}
	if err != nil {
		return providers.Object{}, classify(fmt.Errorf("local: stat %q: %w", key, err))
	}
	return object(key, fi), nil
}

func classify(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return providers.Classify(providers.ErrPermission, err)
	}
	return providers.Classify(providers.ErrTransient, err)
}

// object describes a file. Hashing every file on every scan would cost far
// more than the listing, so the ETag is the size and modification time, the
// way web servers derive a weak ETag for static files.
func object(key string, fi fs.FileInfo) providers.Object {
	mt := fi.ModTime().UTC()
	return providers.Object{
		Key:          key,
		Size:         fi.Size(),
		ETag:         strconv.FormatInt(mt.UnixNano(), 16) + "-" + strconv.FormatInt(fi.Size(), 16),
		LastModified: mt,
		ContentType:  mime.TypeByExtension(path.Ext(key)),
	}
}

// walker yields the regular files below root in byte order of their keys.
// Directory entries are sorted as if a directory's name ended in "/", which
// makes a depth-first walk produce keys in global byte order ("a.txt" <
// "a/b"). Only the directories on the current path are held in memory.
type walker struct {
	root, prefix string
	lastKey      string
	stack        []frame
	started      bool
}

type frame struct {
	dir     string // key prefix of the directory: "" or "a/b/"
	entries []entry
	i       int
}

type entry struct {
	name string // with a trailing "/" for directories
	info fs.FileInfo
}

func newWalker(root, prefix, after string) *walker {
	return &walker{root: root, prefix: prefix, lastKey: after}
}

func (w *walker) next() (providers.Object, bool, error) {
	if !w.started {
		w.started = true
		// Start at the deepest directory the prefix names completely.
		start := ""
		if i := strings.LastIndexByte(w.prefix, '/'); i >= 0 {
			start = w.prefix[:i+1]
		}
		if err := w.push(start); err != nil {
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
		key := f.dir + e.name
		if strings.HasSuffix(e.name, "/") {
			if !w.mayContain(key) {
				continue
			}
			if err := w.push(key); err != nil {
				return providers.Object{}, false, err
			}
			continue
		}
		if !strings.HasPrefix(key, w.prefix) || key <= w.lastKey {
			continue
		}
		w.lastKey = key
		return object(key, e.info), true, nil
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

func (w *walker) push(dir string) error {
	des, err := os.ReadDir(filepath.Join(w.root, filepath.FromSlash(dir)))
	if errors.Is(err, fs.ErrNotExist) && dir != "" {
		return nil // vanished during the walk, or a prefix naming no directory
	}
	if err != nil {
		return classify(fmt.Errorf("local: read %s: %w", path.Join(w.root, dir), err))
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return classify(fmt.Errorf("local: stat %s: %w", path.Join(w.root, dir, de.Name()), err))
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			// Follow links to files; links to directories could loop. A
			// dangling or looping link is no object; any other failure
			// fails the listing rather than reading as a deletion.
			target := filepath.Join(w.root, filepath.FromSlash(dir), de.Name())
			if info, err = os.Stat(target); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
				continue
			}
			if err != nil {
				return classify(fmt.Errorf("local: stat %s: %w", target, err))
			}
			if info.IsDir() {
				continue
			}
		}
		switch {
		case info.IsDir():
			entries = append(entries, entry{name: de.Name() + "/"})
		case info.Mode().IsRegular():
			entries = append(entries, entry{name: de.Name(), info: info})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	w.stack = append(w.stack, frame{dir: dir, entries: entries})
	return nil
}
