package local_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/providers/providertest"
)

type harness struct{}

type store struct {
	root string
	p    providers.Provider
}

func (harness) New(t *testing.T, pageSize int) providertest.Store {
	root := t.TempDir()
	p, err := local.New(root, local.WithPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	return &store{root: root, p: p}
}

func (s *store) Provider() providers.Provider { return s.p }

func (s *store) Put(t *testing.T, key string, body []byte, _ string) {
	path := filepath.Join(s.root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *store) Delete(t *testing.T, key string) {
	if err := os.Remove(filepath.Join(s.root, filepath.FromSlash(key))); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) { providertest.Run(t, harness{}) }

// Links to files are listed as the file; dangling, looping and directory
// links are no objects.
func TestSymlinks(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "file.png"), []byte("x"), 0o644))
	must(os.Mkdir(filepath.Join(root, "dir"), 0o755))
	must(os.Symlink("file.png", filepath.Join(root, "link.png")))
	must(os.Symlink("missing.png", filepath.Join(root, "dangling.png")))
	must(os.Symlink("loop-b", filepath.Join(root, "loop-a")))
	must(os.Symlink("loop-a", filepath.Join(root, "loop-b")))
	must(os.Symlink("dir", filepath.Join(root, "dirlink")))
	p, err := local.New(root)
	must(err)
	var keys []string
	must(providers.Walk(t.Context(), p, "", func(pg providers.Page) error {
		for _, o := range pg.Objects {
			keys = append(keys, o.Key)
		}
		return nil
	}))
	if fmt.Sprint(keys) != "[file.png link.png]" {
		t.Fatalf("listed %v, want [file.png link.png]", keys)
	}
}
