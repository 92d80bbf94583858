package pgcatalog_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// A commit the database refuses (a NUL in a text column) fails alone even
// when it shares a group transaction with others: they are committed
// again without it, each with its own changes, numbered without gaps.
func TestGroupCommitFailureIsOwn(t *testing.T) {
	pg := testkit.StartPostgres(t)
	c := open(t, pg.NewDatabase(t))
	defer c.Close()
	s := c.Source("s", providers.ByteOrder)
	const workers, each = 8, 20
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		good, bad int
	)
	fail := make(chan string, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				o := providers.Object{Key: fmt.Sprintf("w%d-%d", w, i), ETag: "e", Size: 1}
				refused := w == 0 && i%4 == 0
				if refused {
					o.ETag = "nul\x00"
				}
				chs, err := s.Commit(t.Context(), []catalog.Mutation{{Object: o, Origin: catalog.Notification}})
				mu.Lock()
				switch {
				case refused && err == nil:
					fail <- "a commit with a NUL in its ETag succeeded"
				case refused:
					bad++
				case err != nil:
					fail <- fmt.Sprintf("%s failed with its group's refused commit: %v", o.Key, err)
				case len(chs) != 1 || chs[0].Object.Key != o.Key:
					fail <- fmt.Sprintf("commit of %s returned %d changes", o.Key, len(chs))
				default:
					good++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(fail)
	for f := range fail {
		t.Error(f)
	}
	recs, err := s.Outbox(t.Context(), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != good {
		t.Fatalf("%d outbox records, %d commits succeeded", len(recs), good)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || strings.Contains(r.Object.ETag, "\x00") {
			t.Fatalf("record %d: seq %d etag %q", i, r.Seq, r.Object.ETag)
		}
	}
	t.Logf("%d committed, %d refused", good, bad)
}
