package local_test

import (
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
