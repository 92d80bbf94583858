package local

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	"github.com/imgly/syncer/providers"
)

var _ providers.FileOpener = (*Provider)(nil)

// OpenFile implements providers.FileOpener. The checks of Stat decide
// whether the key is an object at all (links are refused unless followed,
// and never lead out); the open itself goes through the os.Root too, so a
// link swapped in between can still not reach outside the directory.
func (p *Provider) OpenFile(ctx context.Context, key string) (*os.File, providers.Object, error) {
	if _, err := p.Stat(ctx, key); err != nil {
		return nil, providers.Object{}, err
	}
	name, err := p.fsPath(key)
	if err != nil {
		return nil, providers.Object{}, classify(fmt.Errorf("local: open %q: %w", key, err))
	}
	f, err := p.root.Open(name)
	if err != nil {
		if skippableLink(err) {
			return nil, providers.Object{}, providers.Classify(providers.ErrNotFound, fmt.Errorf("local: open %q: not found", key))
		}
		return nil, providers.Object{}, classify(fmt.Errorf("local: open %q: %w", key, err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, providers.Object{}, classify(fmt.Errorf("local: open %q: %w", key, err))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, providers.Object{}, providers.Classify(providers.ErrNotFound, fmt.Errorf("local: open %q: %w", key, fs.ErrNotExist))
	}
	return f, object(key, fi), nil
}
