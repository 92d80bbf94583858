package ownership_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

// moveBound is the bound on a dead owner's sources moving: the
// lease's TTL (6 s) plus a renew period (2 s) fit in it with room to spare.
const moveBound = 10 * time.Second

// Three replicas share three sources, one each. The owner of a source is
// SIGKILLed twice while files keep changing: its source moves within the
// bound, and a JetStream subscriber sees every change exactly once, none
// a phantom, and the events replay to the directories' contents.
func TestKillOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 80*time.Second)
	defer cancel()
	nats := testkit.StartNATS(t, t.TempDir(), 0)
	sub := subscribe(t, nats.URL)
	c := startCluster(t, nats.URL, 3)
	for _, id := range []string{"r1", "r2", "r3"} {
		c.start(id)
	}
	owners := c.waitOwned(ctx, 30*time.Second, spread)
	t.Logf("owners: %v", owners)

	w := newWriter(t)
	wctx, stopWriting := context.WithCancel(ctx)
	written := make(chan struct{})
	go w.run(wctx, t, c.dirs, written)

	for round := range 2 {
		// Let changes flow under the current owners first.
		src := fmt.Sprintf("s%d", round+1)
		before := c.lastSeq(ctx, src)
		for deadline := time.Now().Add(15 * time.Second); c.lastSeq(ctx, src) < before+3; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no changes committed", src)
			}
			time.Sleep(50 * time.Millisecond)
		}
		victim := c.owners(ctx)[src]
		killed := time.Now()
		c.kill(victim)
		moved := c.waitOwned(ctx, 2*moveBound, func(o map[string]string) bool {
			for _, r := range o {
				if r == victim {
					return false
				}
			}
			return true
		})
		took := time.Since(killed)
		t.Logf("round %d: killed %s (owner of %s); its sources moved in %v: %v", round, victim, src, took, moved)
		if took > moveBound {
			t.Errorf("sources moved %v after the kill, bound %v", took, moveBound)
		}
		c.start(victim) // back to three
	}
	stopWriting()
	<-written
	c.check(ctx, sub, w)
	if t.Failed() {
		for _, id := range []string{"r1", "r2", "r3"} {
			t.Logf("%s log tail:\n%s", id, tail(c.proc(id).log.String(), 30))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// spread: each of the three replicas owns a source.
func spread(o map[string]string) bool {
	seen := map[string]bool{}
	for _, r := range o {
		seen[r] = true
	}
	return len(seen) == 3
}
