package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/schedule"
)

// A file still being written is settling; one left alone for the settle time
// is not; without a settle time nothing is.
func TestSettlingFiles(t *testing.T) {
	root := t.TempDir()
	fresh, old := filepath.Join(root, "fresh.jpg"), filepath.Join(root, "old.jpg")
	for _, f := range []string{fresh, old} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		settle time.Duration
		want   string
	}{{time.Minute, "[fresh.jpg:true old.jpg:false]"}, {0, "[fresh.jpg:false old.jpg:false]"}} {
		p, err := local.New(root, local.WithSettle(tc.settle))
		if err != nil {
			t.Fatal(err)
		}
		pg, err := p.ListPage(context.Background(), "", "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range pg.Objects {
			got = append(got, fmt.Sprintf("%s:%v", o.Key, o.Settling))
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("settle %v: %v, want %s", tc.settle, got, tc.want)
		}
	}
}

// A file appended to over more than a second, scanned all the while, is
// announced once, complete: one "added" with its final size, no "modified".
func TestFileWrittenSlowlyIsAnnouncedOnce(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	cat, err := catalog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	p, err := local.New(root, local.WithSettle(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	cs := cat.Source("s", providers.ByteOrder)
	target := schedule.Target{ID: "s", Provider: p, Catalog: cs}
	scan := func() {
		t.Helper()
		if _, err := schedule.Reconcile(context.Background(), target, schedule.Options{SpillDir: dir}); err != nil {
			t.Fatal(err)
		}
	}

	f, err := os.Create(filepath.Join(root, "video.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	const chunks, chunk = 12, 100
	for i := range chunks {
		if _, err := f.Write(make([]byte, chunk)); err != nil {
			t.Fatal(err)
		}
		scan() // a scan sees every intermediate size
		if i < chunks-1 {
			time.Sleep(100 * time.Millisecond) // the writer's pace, not a synchronisation
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		scan()
		st, err := cs.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Objects == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the finished file was never announced")
		}
	}
	changes, err := cs.Outbox(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Op != catalog.Added || changes[0].Object.Size != chunks*chunk {
		t.Fatalf("changes %+v: want one added of %d bytes", changes, chunks*chunk)
	}
}
