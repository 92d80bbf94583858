package catalog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// A scan's batch gives way to a pending notification commit: the
// notification is committed between two of the batch's transactions, with a
// sequence number inside the batch's, and the batch still commits all of
// its changes, in order.
func TestScanBatchYieldsToPendingNotification(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	g := c.b.(*boltCatalog).group
	ctx := context.Background()

	// A phantom pending call keeps the scan yielding after every chunk,
	// so that the test knows where it is; the notifications below are
	// what let it go on.
	g.waiting.Add(1)
	const n = 20_000 // far more than one yieldAfter's worth
	muts := make([]Mutation, n)
	for i := range muts {
		muts[i] = upsert(obj(fmt.Sprintf("scan/%06d", i), "e", int64(i)))
	}
	scanned := make(chan commitResult, 1)
	go func() {
		chs, err := s.Commit(ctx, muts)
		scanned <- commitResult{chs, err}
	}()
	waitYielding(t, g, scanned)

	note := Mutation{Object: obj("notified", "n", 1), Origin: Notification, Sequencer: "01"}
	chs, err := s.Commit(ctx, []Mutation{note})
	if err != nil || len(chs) != 1 {
		t.Fatalf("notification commit: %v, %v", chs, err)
	}
	noteSeq := chs[0].Seq
	// Drop the phantom; one more group transaction wakes the scan, which
	// then has nothing pending and finishes in one go.
	g.waiting.Add(-1)
	if err := s.Ack(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var r commitResult
	select {
	case r = <-scanned:
	case <-time.After(30 * time.Second):
		t.Fatal("the scan batch did not finish after the notifications went through")
	}
	if r.err != nil || len(r.changes) != n {
		t.Fatalf("scan commit: %d changes, %v; want %d", len(r.changes), r.err, n)
	}
	for i, ch := range r.changes {
		want := uint64(i + 1)
		if want >= noteSeq {
			want++
		}
		if ch.Seq != want || ch.Object.Key != muts[i].Object.Key {
			t.Fatalf("change %d: seq %d key %q, want seq %d key %q", i, ch.Seq, ch.Object.Key, want, muts[i].Object.Key)
		}
	}
	if noteSeq <= 1 || noteSeq > n {
		t.Fatalf("notification seq %d is not inside the batch's 1..%d", noteSeq, n+1)
	}
	if st := stats(t, s); st.Objects != n+1 || st.LastSeq != n+1 {
		t.Fatalf("stats %+v, want %d objects and changes", st, n+1)
	}
}

type commitResult struct {
	changes []Change
	err     error
}

// waitYielding waits until a transaction waits in g.yield.
func waitYielding(t *testing.T, g *groupCommit, failed <-chan commitResult) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g.mu.Lock()
		yielding := g.turn != nil
		g.mu.Unlock()
		if yielding {
			return
		}
		select {
		case r := <-failed:
			t.Fatalf("the scan batch ended without yielding: %d changes, %v", len(r.changes), r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the scan batch never yielded to a pending notification")
		}
		time.Sleep(time.Millisecond) // polling for a state no event announces
	}
}

// A batch with an empty key commits none of its mutations, even when it
// would have been cut into several transactions.
func TestScanBatchWithBadKeyCommitsNothing(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	g := c.b.(*boltCatalog).group
	g.waiting.Add(1) // yield as early as allowed
	defer g.waiting.Add(-1)
	muts := make([]Mutation, 10_000)
	for i := range muts {
		muts[i] = upsert(obj(fmt.Sprintf("k%05d", i), "e", 1))
	}
	muts[len(muts)-1].Object.Key = ""
	if _, err := s.Commit(context.Background(), muts); err == nil {
		t.Fatal("a batch with an empty key committed")
	}
	if st := stats(t, s); st != (Stats{}) {
		t.Fatalf("stats %+v after a failed batch, want zero", st)
	}
}
