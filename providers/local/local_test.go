package local_test

import (
	"errors"
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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func keys(t *testing.T, p providers.Provider, prefix string) []string {
	t.Helper()
	var keys []string
	for _, o := range providertest.ListAll(t, p, prefix) {
		keys = append(keys, o.Key)
	}
	return keys
}

// With followSymlinks, links to files inside the root are listed as the
// file; dangling, looping and directory links are no objects. Without it
// (the default) no link is listed or stat-able.
func TestSymlinks(t *testing.T) {
	root := t.TempDir()
	must(t, os.WriteFile(filepath.Join(root, "file.png"), []byte("x"), 0o644))
	must(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "dir", "in.png"), []byte("x"), 0o644))
	must(t, os.Symlink("file.png", filepath.Join(root, "link.png")))
	// Inside the root, though out of its own directory.
	must(t, os.Symlink("../file.png", filepath.Join(root, "dir", "up.png")))
	must(t, os.Symlink("missing.png", filepath.Join(root, "dangling.png")))
	must(t, os.Symlink("loop-b", filepath.Join(root, "loop-a")))
	must(t, os.Symlink("loop-a", filepath.Join(root, "loop-b")))
	must(t, os.Symlink("dir", filepath.Join(root, "dirlink")))
	for _, tc := range []struct {
		follow bool
		want   string
	}{
		{false, "[dir/in.png file.png]"},
		{true, "[dir/in.png dir/up.png file.png link.png]"},
	} {
		p, err := local.New(root, local.WithFollowSymlinks(tc.follow))
		must(t, err)
		if got := fmt.Sprint(keys(t, p, "")); got != tc.want {
			t.Errorf("followSymlinks %v: listed %v, want %v", tc.follow, got, tc.want)
		}
		_, err = p.Stat(t.Context(), "link.png")
		if tc.follow && err != nil || !tc.follow && !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("followSymlinks %v: stat of a link: %v", tc.follow, err)
		}
		for _, k := range []string{"dangling.png", "loop-a", "dirlink", "dirlink/in.png"} {
			if _, err := p.Stat(t.Context(), k); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("followSymlinks %v: stat %q: %v, want not found", tc.follow, k, err)
			}
		}
		must(t, p.Close())
	}
}

// No link leads out of the root, followed or not: to a file, to a
// directory, through "..", absolute or relative.
func TestSymlinksOutOfRoot(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	must(t, os.MkdirAll(root, 0o755))
	must(t, os.MkdirAll(filepath.Join(outside, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("secret"), 0o644))
	must(t, os.WriteFile(filepath.Join(outside, "%FF.txt"), []byte("secret"), 0o644))
	must(t, os.WriteFile(filepath.Join(outside, "sub", "deep.txt"), []byte("secret"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "ok.txt"), []byte("x"), 0o644))
	must(t, os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "abs-file.txt")))
	must(t, os.Symlink("../outside/secret.txt", filepath.Join(root, "rel-file.txt")))
	must(t, os.Symlink(outside, filepath.Join(root, "abs-dir")))
	must(t, os.Symlink("../outside", filepath.Join(root, "rel-dir")))
	must(t, os.Symlink("..", filepath.Join(root, "up")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(root, "passwd")))
	for _, follow := range []bool{false, true} {
		p, err := local.New(root, local.WithFollowSymlinks(follow))
		must(t, err)
		if got := fmt.Sprint(keys(t, p, "")); got != "[ok.txt]" {
			t.Errorf("followSymlinks %v: listed %v, want [ok.txt]", follow, got)
		}
		for _, k := range []string{"abs-file.txt", "rel-file.txt", "abs-dir/secret.txt", "rel-dir/sub/deep.txt",
			"up/outside/secret.txt", "passwd", "../outside/secret.txt", "up/root/ok.txt", "rel-dir/%FF.txt"} {
			if o, err := p.Stat(t.Context(), k); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("followSymlinks %v: stat %q: %+v, %v; want not found", follow, k, o, err)
			}
		}
		for _, prefix := range []string{"rel-dir/", "up/", "abs-dir/sub/"} {
			if got := keys(t, p, prefix); len(got) != 0 {
				t.Errorf("followSymlinks %v: prefix %q lists %v", follow, prefix, got)
			}
		}
		must(t, p.Close())
	}
}

// Names that are not UTF-8 get distinct, reversible keys; one whose key is a
// sibling's real name is skipped.
func TestNonUTF8Names(t *testing.T) {
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755))
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Skipf("the file system refuses non-UTF-8 names: %v", err)
		}
	}
	write("bad-\xfd.txt", "fd")
	write("bad-\xfe%.txt", "fe%")
	write("bad-\xff.txt", "ff")
	write("bad-%FF.txt", "real") // the encoding of the one above, as a real name
	write("a%b.txt", "valid")    // valid UTF-8 stays as it is, '%' and all
	write("d\xff/x.txt", "in dir")
	p, err := local.New(root)
	must(t, err)
	objs := providertest.ListAll(t, p, "")
	var got []string
	for _, o := range objs {
		got = append(got, fmt.Sprintf("%s=%d", o.Key, o.Size))
	}
	want := "[a%b.txt=5 bad-%FD.txt=2 bad-%FE%25.txt=3 bad-%FF.txt=4 d%FF/x.txt=6]"
	if fmt.Sprint(got) != want {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for k, size := range map[string]int64{"bad-%FD.txt": 2, "bad-%FE%25.txt": 3, "bad-%FF.txt": 4, "d%FF/x.txt": 6, "a%b.txt": 5} {
		o, err := p.Stat(t.Context(), k)
		if err != nil || o.Size != size || o.Key != k {
			t.Errorf("stat %q: %+v, %v; want size %d", k, o, err, size)
		}
	}
	if got := fmt.Sprint(keys(t, p, "d%FF/")); got != "[d%FF/x.txt]" {
		t.Errorf("prefix d%%FF/: %v", got)
	}
	for _, k := range []string{"bad-%fd.txt", "bad-%FE.txt", "bad-%ZZ.txt", "d%FF"} {
		if _, err := p.Stat(t.Context(), k); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("stat %q: %v, want not found", k, err)
		}
	}
}

// NewMissing implements providertest.MissingHarness: a directory removed
// after the provider opened it (New refuses one missing from the start).
// The tests run as root here, which no file mode refuses, so there is no
// DeniedHarness.
func (harness) NewMissing(t *testing.T, pageSize int) providers.Provider {
	root := filepath.Join(t.TempDir(), "gone")
	must(t, os.Mkdir(root, 0o755))
	p, err := local.New(root, local.WithPageSize(pageSize))
	must(t, err)
	t.Cleanup(func() { _ = p.Close() })
	must(t, os.Remove(root))
	return p
}

// ReadsAhead implements providertest.ReadAheadHarness.
func (harness) ReadsAhead() string {
	return "a page resumes the walker of the page before, which read each directory whole"
}
