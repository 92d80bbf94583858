package ownership_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

// An owner frozen with SIGSTOP past its lease loses its source to another
// replica. Once it runs again (SIGCONT) it must not publish for that source
// (nor commit: the subscriber and the catalog stay exactly-once) until it
// has acquired a lease anew.
func TestPausedOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 80*time.Second)
	defer cancel()
	nats := testkit.StartNATS(t, t.TempDir(), 0)
	sub := subscribe(t, nats.URL)
	c := startCluster(t, nats.URL, 3)
	for _, id := range []string{"r1", "r2", "r3"} {
		c.start(id)
	}
	owners := c.waitOwned(ctx, 30*time.Second, spread)
	w := newWriter(t)
	wctx, stopWriting := context.WithCancel(ctx)
	written := make(chan struct{})
	go w.run(wctx, t, c.dirs, written)
	for deadline := time.Now().Add(15 * time.Second); c.lastSeq(ctx, "s1") < 5; {
		if time.Now().After(deadline) {
			t.Fatal("s1: no changes committed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	victim := owners["s1"]
	lost := map[string]bool{}
	for s, r := range c.owners(ctx) {
		if r == victim {
			lost[s] = true
		}
	}
	p := c.proc(victim)
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	c.waitOwned(ctx, 2*moveBound, func(o map[string]string) bool {
		for s := range lost {
			if o[s] == victim {
				return false
			}
		}
		return true
	})
	// Past the move, the new owners publish; then the victim wakes up
	// holding whatever batch it had read.
	time.Sleep(time.Second) //nolint:forbidigo // keeps the victim frozen while the new owner publishes, not a synchronisation
	resumed := len(p.log.String())
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Let it run a few renew periods: long enough to publish if it were
	// going to, and to rejoin and take a share back.
	c.waitOwned(ctx, 20*time.Second, func(o map[string]string) bool {
		n := 0
		for _, r := range o {
			if r == victim {
				n++
			}
		}
		return n == 1
	})
	stopWriting()
	<-written
	c.check(ctx, sub, w)
	after := p.log.String()[resumed:]
	stale := map[string]bool{}
	for s := range lost {
		stale[s] = true
	}
	for _, line := range strings.Split(after, "\n") {
		for s := range stale {
			switch {
			case strings.Contains(line, `msg="ownership: source acquired" source=`+s+" "):
				stale[s] = false // published from here on under a new lease
			case stale[s] && strings.Contains(line, "msg=published source="+s+" "):
				t.Errorf("%s published for %s after losing its lease: %s", victim, s, line)
			}
		}
	}
	if !strings.Contains(after, "lease lost to another replica") && !strings.Contains(after, "not renewed in time") {
		t.Errorf("%s did not notice losing its leases after SIGCONT", victim)
	}
	t.Logf("victim %s lost %v; its log after SIGCONT:\n%s", victim, lost, tail(after, 25))
}
