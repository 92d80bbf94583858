package ownership_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

// TestFailoverTimes measures failover — owner SIGKILLed → first event of
// its source published by the new owner — over SYNCER_FAILOVER_KILLS kills
// (skipped without it; docs/benchmarks.md has the figures and command).
func TestFailoverTimes(t *testing.T) {
	kills, _ := strconv.Atoi(os.Getenv("SYNCER_FAILOVER_KILLS"))
	if kills < 1 {
		t.Skip("set SYNCER_FAILOVER_KILLS to measure failover times")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(kills)*30*time.Second+time.Minute)
	defer cancel()
	nats := testkit.StartNATS(t, t.TempDir(), 0)
	sub := subscribe(t, nats.URL)
	c := startCluster(t, nats.URL, 3)
	for _, id := range []string{"r1", "r2", "r3"} {
		c.start(id)
	}
	c.waitOwned(ctx, 30*time.Second, spread)
	w := newWriter(t)
	wctx, stopWriting := context.WithCancel(ctx)
	written := make(chan struct{})
	go w.run(wctx, t, c.dirs, written)
	var took []time.Duration
	for range kills {
		before := c.lastSeq(ctx, "s1")
		for deadline := time.Now().Add(15 * time.Second); c.lastSeq(ctx, "s1") < before+3; {
			if time.Now().After(deadline) {
				t.Fatal("s1: no changes committed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		victim := c.owners(ctx)["s1"]
		logs := map[string]int{}
		for _, id := range []string{"r1", "r2", "r3"} {
			logs[id] = len(c.proc(id).log.String())
		}
		killed := time.Now()
		c.kill(victim)
		first := c.firstPublish(ctx, victim, "s1", logs, killed.Add(30*time.Second))
		took = append(took, first.Sub(killed))
		t.Logf("kill %d: %s killed, first event of s1 from the new owner after %v", len(took), victim, first.Sub(killed))
		c.start(victim)
		c.waitOwned(ctx, 30*time.Second, spread)
	}
	stopWriting()
	<-written
	c.check(ctx, sub, w)
	slices.Sort(took)
	t.Logf("failover over %d kills: p50 %v, max %v, min %v", len(took), took[len(took)/2], took[len(took)-1], took[0])
}

// firstPublish waits for a replica other than victim to log, after the
// offsets in from, that it acquired source and then published it; it
// returns the publish's log time.
func (c *cluster) firstPublish(ctx context.Context, victim, source string, from map[string]int, deadline time.Time) time.Time {
	c.t.Helper()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for id, off := range from {
			if id == victim {
				continue
			}
			acquired := false
			for _, line := range strings.Split(c.proc(id).log.String()[off:], "\n") {
				switch {
				case strings.Contains(line, `msg="ownership: source acquired" source=`+source+" "):
					acquired = true
				case acquired && strings.Contains(line, "msg=published source="+source+" "):
					ts, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(strings.Fields(line)[0], "time="))
					if err != nil {
						c.t.Fatalf("log time of %q: %v", line, err)
					}
					return ts
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no replica published %s after %s was killed", source, victim)
	return time.Time{}
}
