package schedule_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/schedule"
)

// The same through a real adapter (the local provider behind WithTimeout,
// as the worker opens it): killed twice part-way, the first scan completes
// with each file announced once, the resumed listings listing fewer files.
func TestFirstScanResumesLocal(t *testing.T) {
	const n = 120
	root := t.TempDir()
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("d%d", i%4), fmt.Sprintf("f%03d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lp, err := local.New(root, local.WithPageSize(10))
	if err != nil {
		t.Fatal(err)
	}
	p := providers.WithTimeout(lp, 0)
	cs := openSource(t, p.Order())
	scan := func(killAfterPages int) (schedule.Result, error) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		return schedule.Reconcile(ctx, schedule.Target{ID: "s", Provider: p, Catalog: cs, Guard: &schedule.Guard{MaxDeletePercent: 50}},
			schedule.Options{BatchSize: 10, SpillDir: t.TempDir(), OnPage: func(pr schedule.Progress) {
				if killAfterPages > 0 && pr.Pages == killAfterPages {
					cancel()
				}
			}})
	}
	var listed []int
	for _, k := range []int{3, 4} {
		res, err := scan(k)
		if err == nil {
			t.Fatal("killed scan succeeded")
		}
		listed = append(listed, res.Listed)
	}
	res, err := scan(0)
	if err != nil || res.ResumedAfter == "" {
		t.Fatalf("%+v %v", res, err)
	}
	listed = append(listed, res.Listed)
	t.Logf("listed per attempt: %v", listed)
	if listed[1] >= n || listed[2] >= n {
		t.Errorf("resumed listings listed %v, want fewer than %d each", listed, n)
	}
	changes, err := cs.Outbox(context.Background(), 1, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, c := range changes {
		if c.Seq != uint64(i+1) || c.Op != catalog.Added || seen[c.Object.Key] {
			t.Fatalf("change %d: seq %d %v %q", i, c.Seq, c.Op, c.Object.Key)
		}
		seen[c.Object.Key] = true
	}
	if len(changes) != n {
		t.Fatalf("%d changes, want %d", len(changes), n)
	}
}
