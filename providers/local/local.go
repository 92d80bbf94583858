// Package local is the zero-setup provider: a directory tree, where a key is
// the slash path of a regular file relative to the root.
//
// The provider never reaches outside its root: every open, stat and
// directory read goes through an os.Root, which refuses paths and symbolic
// links that lead out of it. Symbolic links are not listed unless
// WithFollowSymlinks is set; then a link to a file inside the root is listed
// as that file, while links to directories (which could loop), dangling or
// looping links, and links leading out of the root are no objects.
//
// A name that is not valid UTF-8 becomes a key with its invalid bytes, and
// any '%' in it, percent-encoded ("bad-\xff.txt" is "bad-%FF.txt"), which is
// reversible. Should a directory also hold a file whose real name is that
// encoding, the real name keeps the key and the non-UTF-8 file is skipped
// with a warning: never two files on one key.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/imgly/syncer/providers"
)

// DefaultPageSize is how many files one ListPage returns.
const DefaultPageSize = 1000

// Provider lists a directory tree in key (byte) order.
type Provider struct {
	dir      string // the root's absolute path, for messages
	root     *os.Root
	pageSize int
	follow   bool
	settle   time.Duration
	log      *slog.Logger

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

// WithFollowSymlinks lists symbolic links to files inside the root as the
// files they point to (default: links are not listed).
func WithFollowSymlinks(on bool) Option { return func(p *Provider) { p.follow = on } }

// WithSettle marks files modified less than d ago as settling: a scan
// announces a file once it has not changed for d, so a file still being
// written is announced once, complete, instead of once per scan that sees
// it grow.
func WithSettle(d time.Duration) Option { return func(p *Provider) { p.settle = d } }

// WithLogger sets where skipped names are reported (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(p *Provider) { p.log = l } }

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
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, classify(fmt.Errorf("local: open %s: %w", abs, err))
	}
	p := &Provider{dir: abs, root: r, pageSize: DefaultPageSize}
	for _, o := range opts {
		o(p)
	}
	if p.pageSize < 1 {
		p.pageSize = DefaultPageSize
	}
	if p.log == nil {
		p.log = slog.Default()
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
func (p *Provider) Close() error { return p.root.Close() }

// ListPage implements providers.Provider. The token is the last key of the
// previous page.
func (p *Provider) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	p.mu.Lock()
	w := p.last
	p.last = nil
	p.mu.Unlock()
	if w == nil || w.prefix != prefix || w.lastKey != token || token == "" {
		w = &walker{p: p, prefix: prefix, lastKey: token}
	}
	var page providers.Page
	for len(page.Objects) < p.pageSize {
		if err := ctx.Err(); err != nil {
			return providers.Page{}, err
		}
		o, ok, err := w.next()
		if err != nil {
			return providers.Page{}, p.rootGone(err)
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

// ListPageAfter implements providers.StartAfterLister. The walker resumes
// after any key, not only one it listed (a page token is the last key of
// its page), and skips the subtrees that sort before it.
func (p *Provider) ListPageAfter(ctx context.Context, prefix, startAfter string) (providers.Page, error) {
	return p.ListPage(ctx, prefix, startAfter)
}

// Stat implements providers.Provider. It sees what the listing sees: a
// key through a symbolic link, or to one when links are not followed, is
// not found.
func (p *Provider) Stat(ctx context.Context, key string) (providers.Object, error) {
	if err := ctx.Err(); err != nil {
		return providers.Object{}, err
	}
	notFound := providers.Classify(providers.ErrNotFound, fmt.Errorf("local: stat %q: not found", key))
	if !fs.ValidPath(key) || key == "." {
		return providers.Object{}, notFound
	}
	name, err := p.fsPath(key)
	if errors.Is(err, fs.ErrNotExist) {
		return providers.Object{}, notFound
	}
	if err != nil {
		return providers.Object{}, classify(fmt.Errorf("local: stat %q: %w", key, err))
	}
	// No directory on the way may be a link: the listing does not descend
	// into linked directories.
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		err := p.realDir(name[:i])
		if errors.Is(err, fs.ErrNotExist) {
			return providers.Object{}, notFound
		}
		if err != nil {
			return providers.Object{}, classify(fmt.Errorf("local: stat %q: %w", key, err))
		}
	}
	fi, err := p.root.Lstat(name)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if !p.follow {
			return providers.Object{}, notFound
		}
		fi, err = p.root.Stat(name)
		if err != nil && skippableLink(err) {
			return providers.Object{}, notFound
		}
	}
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return providers.Object{}, notFound
	}
	if err != nil {
		return providers.Object{}, classify(fmt.Errorf("local: stat %q: %w", key, err))
	}
	return object(key, fi), nil
}

// realDir checks that dir (a slash path below the root) and every
// directory above it are directories, not links to one: what the walk
// would descend into. An error matching fs.ErrNotExist says it is not.
func (p *Provider) realDir(dir string) error {
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		fi, err := p.root.Lstat(dir[:i])
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: %w", dir[:i], fs.ErrNotExist)
		}
	}
	return nil
}

// fsPath is the path below the root of the file or directory with key: the
// key itself if that exists (a real name wins over an encoded one, as in the
// listing), otherwise the key with each encoded component decoded.
func (p *Provider) fsPath(key string) (string, error) {
	if !strings.Contains(key, "%") {
		return key, nil
	}
	_, err := p.root.Lstat(key)
	if err == nil || !errors.Is(err, fs.ErrNotExist) && !skippableLink(err) {
		return key, err
	}
	comps := strings.Split(key, "/")
	for i, c := range comps {
		comps[i] = nameOf(c)
	}
	return strings.Join(comps, "/"), nil
}

// skippableLink reports whether err, from following a symbolic link, means
// the link is no object: it dangles, loops, or leads out of the root (which
// os.Root refuses with an unexported error).
func skippableLink(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) ||
		strings.Contains(err.Error(), "path escapes from parent")
}

// keyOf is the key component of a file name: the name itself when it is
// valid UTF-8; otherwise the name with its invalid bytes and its '%' signs
// percent-encoded, which nameOf reverses.
func keyOf(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "%%%02X", name[i])
		case name[i] == '%':
			b.WriteString("%25")
		default:
			b.WriteString(name[i : i+size])
		}
		i += size
	}
	return b.String()
}

// nameOf reverses keyOf: a key component that is the encoding of a name
// that is not valid UTF-8 becomes that name; anything else stays as it is.
func nameOf(key string) string {
	if !strings.Contains(key, "%") {
		return key
	}
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		if key[i] != '%' {
			b.WriteByte(key[i])
			continue
		}
		if i+2 >= len(key) {
			return key
		}
		v, err := strconv.ParseUint(key[i+1:i+3], 16, 8)
		if err != nil {
			return key
		}
		b.WriteByte(byte(v))
		i += 2
	}
	if name := b.String(); keyOf(name) == key && name != key {
		return name
	}
	return key
}

// rootGone marks a listing error ErrBucketNotFound when the root directory
// itself has gone (removed, unmounted) since New: that is a missing bucket,
// not a transient failure.
func (p *Provider) rootGone(err error) error {
	if _, serr := os.Stat(p.dir); errors.Is(serr, fs.ErrNotExist) {
		var ke *providers.KindError
		if errors.As(err, &ke) {
			err = ke.Err // not also ErrTransient
		}
		return providers.Classify(providers.ErrBucketNotFound, err)
	}
	return err
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
