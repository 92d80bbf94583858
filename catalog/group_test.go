package catalog

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func openBolt(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Concurrent updates all commit, and the group is idle afterwards.
func TestGroupCommitCommitsEveryUpdate(t *testing.T) {
	db := openBolt(t)
	g := &groupCommit{db: db}
	const n = 400
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				return b.Put(fmt.Appendf(nil, "k%04d", i), []byte("v"))
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var keys int
	if err := db.View(func(tx *bolt.Tx) error {
		keys = tx.Bucket([]byte("b")).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if keys != n {
		t.Fatalf("%d keys committed, want %d", keys, n)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy || len(g.queue) != 0 {
		t.Fatalf("group left busy=%v with %d queued", g.busy, len(g.queue))
	}
}

// A failing update gets its own error and commits nothing; the updates it
// was grouped with commit, even though their group's first attempt was
// rolled back.
func TestGroupCommitIsolatesAFailingUpdate(t *testing.T) {
	db := openBolt(t)
	g := &groupCommit{db: db}
	boom := errors.New("boom")
	put := func(k string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte("v"))
		}
	}
	// Hold the group busy so that the three updates queue up and commit
	// as one batch.
	release := make(chan struct{})
	started := make(chan struct{})
	go g.update(func(tx *bolt.Tx) error { //nolint:errcheck // the holder's own result is not the point
		close(started)
		<-release
		return nil
	})
	<-started
	var wg sync.WaitGroup
	results := map[string]error{}
	var mu sync.Mutex
	for _, k := range []string{"a", "bad", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := put(k)
			if k == "bad" {
				fn = func(tx *bolt.Tx) error {
					if err := put(k)(tx); err != nil {
						return err
					}
					return boom
				}
			}
			err := g.update(fn)
			mu.Lock()
			results[k] = err
			mu.Unlock()
		}()
	}
	// Wait until all three are queued behind the holder.
	for {
		g.mu.Lock()
		queued := len(g.queue)
		g.mu.Unlock()
		if queued == 3 {
			break
		}
		runtime.Gosched() // until they have queued; no timing assumed
	}
	close(release)
	wg.Wait()
	if !errors.Is(results["bad"], boom) || results["a"] != nil || results["c"] != nil {
		t.Fatalf("results %v", results)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		if b.Get([]byte("a")) == nil || b.Get([]byte("c")) == nil || b.Get([]byte("bad")) != nil {
			return fmt.Errorf("a=%q c=%q bad=%q", b.Get([]byte("a")), b.Get([]byte("c")), b.Get([]byte("bad")))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A panicking update fails with an error and the group goes on.
func TestGroupCommitSurvivesAPanic(t *testing.T) {
	db := openBolt(t)
	g := &groupCommit{db: db}
	err := g.update(func(*bolt.Tx) error { panic("bug") })
	if err == nil || !strings.Contains(err.Error(), "panicked: bug") {
		t.Fatalf("panicking update: err %v", err)
	}
	if err := g.update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("b"))
		return err
	}); err != nil {
		t.Fatalf("the next update: %v", err)
	}
}
