package catalogtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/catalog/catalogtest"
	"github.com/imgly/syncer/providers"
)

// The suite must be able to fail: each case below is run, in a child test
// process, against a backend broken in the way the case is there to catch,
// and the child must report that case failed (a failing *testing.T fails
// its parents, so a child process is the only honest way).
const brokenEnv = "CATALOGTEST_BROKEN"

type broken struct {
	wrap  func(catalog.SourceBackend) catalog.SourceBackend
	cases []string // subtests of TestBroken that must fail
}

var brokenBackends = map[string]broken{
	"gap-in-sequence":     {func(s catalog.SourceBackend) catalog.SourceBackend { return gap{s} }, []string{"SequenceWithoutGaps"}},
	"loses-outbox-record": {func(s catalog.SourceBackend) catalog.SourceBackend { return losesRecord{s} }, []string{"ChangeAndOutboxTogether", "ConcurrentCommits", "OutboxAck"}},
	"ignores-sequencer":   {func(s catalog.SourceBackend) catalog.SourceBackend { return noSequencer{s} }, []string{"Sequencer"}},
	"never-wakes":         {func(s catalog.SourceBackend) catalog.SourceBackend { return neverWakes{s} }, []string{"Wait"}},
	"stale-view":          {func(s catalog.SourceBackend) catalog.SourceBackend { return staleView{s} }, []string{"View"}},
}

func TestSuiteCatchesBrokenBackends(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child")
	}
	for name, b := range brokenBackends {
		t.Run(name, func(t *testing.T) {
			for _, c := range b.cases {
				cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestBroken$/^"+c+"$", "-test.v", "-test.count=1")
				cmd.Env = append(os.Environ(), brokenEnv+"="+name)
				out, err := cmd.CombinedOutput()
				if err == nil || !strings.Contains(string(out), "--- FAIL: TestBroken/"+c+" ") {
					t.Errorf("%s: case %s did not fail (%v):\n%s", name, c, err, out)
				}
			}
		})
	}
}

// TestBroken is the child: the suite against the backend named by brokenEnv.
func TestBroken(t *testing.T) {
	b, ok := brokenBackends[os.Getenv(brokenEnv)]
	if !ok {
		t.Skip("run by TestSuiteCatchesBrokenBackends")
	}
	catalogtest.Run(t, func(t *testing.T) *catalog.Catalog {
		return catalog.New(wrapped{openBackend(t), b.wrap})
	})
}

// openBackend is a bbolt backend, reached through a catalog's Backend.
func openBackend(t *testing.T) catalog.Backend { return catalog.BackendOf(openBolt(t)) }

type wrapped struct {
	catalog.Backend
	wrap func(catalog.SourceBackend) catalog.SourceBackend
}

func (w wrapped) Source(id string, order providers.Order, indexed bool) catalog.SourceBackend {
	return w.wrap(w.Backend.Source(id, order, indexed))
}

// gap numbers changes from 2 on one too high, as a SEQUENCE that lost a value.
type gap struct{ catalog.SourceBackend }

func (g gap) Commit(ctx context.Context, muts []catalog.Mutation, now time.Time) ([]catalog.Change, error) {
	chs, err := g.SourceBackend.Commit(ctx, muts, now)
	for i := range chs {
		if chs[i].Seq >= 2 {
			chs[i].Seq++
		}
	}
	return chs, err
}

// losesRecord drops the outbox record of change 2.
type losesRecord struct{ catalog.SourceBackend }

func (l losesRecord) Outbox(ctx context.Context, from uint64, limit int) ([]catalog.Change, error) {
	chs, err := l.SourceBackend.Outbox(ctx, from, limit)
	for i := range chs {
		if chs[i].Seq == 2 {
			return append(chs[:i:i], chs[i+1:]...), err
		}
	}
	return chs, err
}

// noSequencer commits notifications as if they had no sequencer.
type noSequencer struct{ catalog.SourceBackend }

func (n noSequencer) Commit(ctx context.Context, muts []catalog.Mutation, now time.Time) ([]catalog.Change, error) {
	for i := range muts {
		muts[i].Sequencer = ""
	}
	return n.SourceBackend.Commit(ctx, muts, now)
}

type neverWakes struct{ catalog.SourceBackend }

func (neverWakes) Wait() <-chan struct{} { return make(chan struct{}) }

// staleView hands out snapshots that claim no changes.
type staleView struct{ catalog.SourceBackend }

func (s staleView) View(ctx context.Context, fn func(*catalog.Snapshot) error) error {
	return s.SourceBackend.View(ctx, func(sn *catalog.Snapshot) error {
		sn.Seq = 0
		return fn(sn)
	})
}
