package convergence

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/events"
)

var (
	flagSeeds = flag.Int("convergence.seeds", 16, "number of seeds (1..N) TestConvergence runs")
	flagOps   = flag.Int("convergence.ops", 40, "operations per seed")
	flagSeed  = flag.Uint64("convergence.seed", 0, "run only this seed (0: seeds 1..convergence.seeds)")
)

// TestConvergence is the convergence property: whatever the interleaving of
// bucket operations, scans, notifications (duplicated, reordered, delayed,
// lost) and crashes, once the bucket is quiet and a scan has run,
//
//  1. the catalog equals the bucket (keys, sizes, ETags);
//  2. replaying the stream from empty yields exactly the bucket;
//  3. the stream holds every committed change exactly once, in order;
//  4. in seeds that lose no notification, delivering every pending one (in
//     any order, some twice) brings the catalog to the bucket without a
//     scan — the sequencers' job, which a final scan would otherwise hide.
//
// (3) is what docs/design.md "Events" promises for one catalog instance
// whose stream was never purged and whose catalog was never restored from a
// backup: the publisher reads its last event back from the stream after a
// crash and resumes after it, and a retried publish keeps its id, so that
// JetStream's duplicate window drops it. The test's stream has a 100 ms
// duplicate window and every outage lasts longer ("however long the
// outage"), so it is the resume that is tested, not the dedup. So the events of the source have
// ids <instance>.<source>.<first>-<last> and ranges 1..a, a+1..b, ... up to
// the catalog's last sequence number: no gap, no overlap, no repeat. Where
// the events are cut (coalescing) is not promised, nor that each change is
// "real": a late notification may publish a state that the next one or a
// scan takes back — the replay must still end at the bucket.
//
// Every choice comes from the seed; waits are on events with deadlines.
// Which of a worker's own goroutines (the publisher) gets where first is the
// only thing left to timing, and no check depends on it.
func TestConvergence(t *testing.T) {
	if testing.Short() {
		t.Skip("convergence: not in -short")
	}
	seeds := make([]uint64, 0, *flagSeeds)
	if *flagSeed != 0 {
		seeds = append(seeds, *flagSeed)
	} else {
		for s := 1; s <= *flagSeeds; s++ {
			seeds = append(seeds, uint64(s))
		}
	}
	var total stats
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			st := runSeed(t, seed, *flagOps)
			total.add(st)
		})
	}
	t.Logf("%d seeds × %d ops: %s", len(seeds), *flagOps, total)
	if len(seeds) >= 10 && !t.Failed() {
		// The test is only as good as what it exercised.
		for what, n := range map[string]int{
			"crashes with unpublished changes":    total.crashesUnpublished,
			"crashes during a listing":            total.crashesInScan,
			"scans held while the bucket changed": total.heldScans,
			"duplicated notifications":            total.duplicated,
			"lost notifications":                  total.lost,
			"restarts":                            total.starts,
		} {
			if n == 0 {
				t.Errorf("no %s over %d seeds: the sequence does not cover what it claims", what, len(seeds))
			}
		}
	}
}

// stats count what a run exercised.
type stats struct {
	ops, starts, crashes, crashesUnpublished, crashesInScan, heldScans, crashesAckLost int
	delivered, duplicated, lost, events, changes, checkpoints                          int
}

func (s *stats) add(o stats) {
	s.ops += o.ops
	s.starts += o.starts
	s.crashes += o.crashes
	s.crashesUnpublished += o.crashesUnpublished
	s.crashesInScan += o.crashesInScan
	s.crashesAckLost += o.crashesAckLost
	s.heldScans += o.heldScans
	s.delivered += o.delivered
	s.duplicated += o.duplicated
	s.lost += o.lost
	s.events += o.events
	s.changes += o.changes
	s.checkpoints += o.checkpoints
}

func (s stats) String() string {
	return fmt.Sprintf("%d ops, %d worker starts, %d crashes (%d with unpublished changes, %d during a listing, %d with an event's ack lost), %d scans held while the bucket changed, %d notifications delivered (%d duplicated, %d lost), %d events with %d changes in the stream, %d lossless checkpoints",
		s.ops, s.starts, s.crashes, s.crashesUnpublished, s.crashesInScan, s.crashesAckLost, s.heldScans, s.delivered, s.duplicated, s.lost, s.events, s.changes, s.checkpoints)
}

// keyspace is small so that keys are overwritten, deleted and re-created
// often; it has keys S3 form-encodes in notifications.
var keyspace = []string{
	"a.txt", "a b.txt", "a+b.txt", "100%.png", "b/c.jpg", "b/c/d.jpg", "ünï/café.png", "日本.jpg", "z", "z/😀.png",
}

// run is one seed's sequence.
type run struct {
	t       *testing.T
	h       *harness
	rng     *rand.Rand
	model   map[string][]byte // what the bucket holds
	pending []record          // notifications sent by S3, not delivered yet
	seq     uint64            // the last sequencer handed out
	// lossless runs lose no notification, and check at checkpoints that
	// notifications alone, in any order and repeated, bring the catalog to
	// the bucket — what the sequencers are for; a final scan would hide
	// their failure.
	lossless bool
	trace    []string
	st       stats
}

func runSeed(t *testing.T, seed uint64, ops int) stats {
	rng := rand.New(rand.NewPCG(seed, 0x636f6e76)) //nolint:gosec // a seeded sequence, not a secret
	// The publisher's regime is part of the seed: publish at once; coalesce
	// briefly into small events; or hold everything until a full event or
	// the shutdown flush, so every crash finds unpublished changes.
	regimes := []struct {
		window time.Duration
		max    int
	}{{0, 500}, {20 * time.Millisecond, 3}, {time.Hour, 4}}
	reg := regimes[rng.IntN(len(regimes))]
	pageSize := 2 + rng.IntN(3)
	r := &run{t: t, rng: rng, model: map[string][]byte{}, lossless: rng.IntN(2) == 0}
	r.logf("regime: coalesceWindow=%v maxChanges=%d pageSize=%d lossless=%v", reg.window, reg.max, pageSize, r.lossless)
	r.h = newHarness(t, pageSize, reg.window, reg.max)
	defer func() {
		if t.Failed() {
			t.Logf("replay: go test ./internal/convergence -run TestConvergence -convergence.seed=%d -convergence.ops=%d -v", seed, ops)
			t.Logf("sequence of seed %d:\n%s", seed, strings.Join(r.trace, "\n"))
			t.Logf("worker log (tail):\n%s", r.h.log.tail(60))
		}
	}()
	r.h.start()
	for i := 0; i < ops && !t.Failed(); i++ {
		r.step(i)
	}
	if t.Failed() {
		return r.st
	}
	r.finish()
	r.st.starts = r.h.starts
	return r.st
}

func (r *run) logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf(format, args...))
}

// step runs one operation, chosen by weight.
func (r *run) step(i int) {
	r.st.ops++
	n := r.rng.IntN(100)
	switch {
	case n < 30:
		r.bucketPut(i, "", 4)
	case n < 44:
		r.bucketDelete(i, "", 4)
	case n < 65:
		r.deliverOne(i)
	case n < 71:
		r.deliverBatch(i)
	case n < 76 && r.lossless:
		r.checkpoint(i)
	case n < 76:
		r.lose(i)
	case n < 83:
		r.scan(i)
	case n < 92:
		r.heldScan(i)
	case n < 94:
		r.crash(i)
	case n < 96:
		r.crashAckLost(i)
	case n < 98:
		r.crashInScan(i)
	default:
		r.restart(i)
	}
}

// bucketPut creates, re-creates or overwrites a key, and S3 sends its
// notification: sometimes at once, otherwise it waits in pending.
func (r *run) bucketPut(i int, key string, now int) {
	if key == "" {
		key = keyspace[r.rng.IntN(len(keyspace))]
	}
	old, exists := r.model[key]
	body := make([]byte, r.rng.IntN(40))
	for j := range body {
		body[j] = byte('a' + r.rng.IntN(26))
	}
	what := "create"
	switch {
	case exists && r.rng.IntN(10) == 0:
		body, what = old, "overwrite with the same content"
	case exists:
		what = "overwrite"
		for string(body) == string(old) {
			body = append(body, '!')
		}
	}
	r.h.put(key, body)
	r.model[key] = body
	r.seq++
	rec := record{op: "put", key: key, size: len(body), etag: md5Hex(body), sequencer: fmt.Sprintf("%016X", r.seq), at: time.Now()}
	r.logf("%d: bucket %s: %v", i, what, rec)
	r.sent(rec, now)
}

func (r *run) bucketDelete(i int, key string, now int) {
	if key == "" {
		if keys := r.keys(); len(keys) > 0 && r.rng.IntN(8) != 0 {
			key = keys[r.rng.IntN(len(keys))]
		} else {
			key = keyspace[r.rng.IntN(len(keyspace))] // S3 notifies deletes of absent keys too
		}
	}
	r.h.del(key)
	delete(r.model, key)
	r.seq++
	rec := record{op: "delete", key: key, sequencer: fmt.Sprintf("%016X", r.seq), at: time.Now()}
	r.logf("%d: bucket %v", i, rec)
	r.sent(rec, now)
}

// sent is S3 emitting rec: delivered at once now times in ten, else kept
// for a later delivery (delayed, reordered) or loss.
func (r *run) sent(rec record, now int) {
	if r.rng.IntN(10) < now {
		r.h.deliver(rec)
		r.st.delivered++
		r.logf("   delivered at once")
		if r.rng.IntN(8) == 0 {
			r.pending = append(r.pending, rec) // to be delivered again
			r.st.duplicated++
			r.logf("   and kept for a duplicate delivery")
		}
		return
	}
	r.pending = append(r.pending, rec)
}

func (r *run) keys() []string {
	keys := make([]string, 0, len(r.model))
	for k := range r.model {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// take removes a random pending notification: any one, so delivery order
// is not send order.
func (r *run) take() (record, bool) {
	if len(r.pending) == 0 {
		return record{}, false
	}
	j := r.rng.IntN(len(r.pending))
	rec := r.pending[j]
	r.pending = slices.Delete(r.pending, j, j+1)
	return rec, true
}

func (r *run) deliverOne(i int) {
	rec, ok := r.take()
	if !ok {
		r.logf("%d: deliver: nothing pending", i)
		return
	}
	r.h.deliver(rec)
	r.st.delivered++
	dup := r.rng.IntN(6) == 0
	r.logf("%d: deliver %v (of %d pending)%s", i, rec, len(r.pending)+1, map[bool]string{true: ", kept for a duplicate delivery"}[dup])
	if dup {
		r.pending = append(r.pending, rec)
		r.st.duplicated++
	}
}

// deliverBatch delivers several pending notifications in one body, the
// way a MinIO/SNS batch or an SQS receive groups them.
func (r *run) deliverBatch(i int) {
	var recs []record
	for n := 2 + r.rng.IntN(3); n > 0; n-- {
		if rec, ok := r.take(); ok {
			recs = append(recs, rec)
		}
	}
	if len(recs) == 0 {
		r.logf("%d: deliver batch: nothing pending", i)
		return
	}
	r.h.deliver(recs...)
	r.st.delivered += len(recs)
	r.logf("%d: deliver batch %v", i, recs)
}

func (r *run) lose(i int) {
	rec, ok := r.take()
	if !ok {
		r.logf("%d: lose: nothing pending", i)
		return
	}
	r.st.lost++
	r.logf("%d: lose %v", i, rec)
}

// checkpoint delivers every pending notification, in random order, and
// checks that the catalog is the bucket without the help of a scan.
func (r *run) checkpoint(i int) {
	r.logf("%d: checkpoint: deliver all %d pending", i, len(r.pending))
	for len(r.pending) > 0 {
		rec, _ := r.take()
		r.h.deliver(rec)
		r.st.delivered++
		r.logf("   deliver %v", rec)
	}
	r.st.checkpoints++
	if d := diff(r.h.listBucket(), r.h.liveCatalog()); d != "" {
		r.t.Errorf("step %d: every notification delivered, none lost, yet the catalog differs from the bucket (want bucket, got catalog):\n%s", i, d)
	}
}

func (r *run) scan(i int) {
	r.logf("%d: scan", i)
	if err := r.h.scanResult(r.h.scanAsync()); err != nil {
		r.t.Fatalf("step %d: scan: %v", i, err)
	}
}

// heldScan scans, holding one of its list pages (computed, not yet
// delivered) while the bucket changes and notifications are applied.
func (r *run) heldScan(i int) {
	page := r.rng.IntN(4)
	r.h.gate.arm(page)
	defer r.h.gate.disarm()
	done := r.h.scanAsync()
	select {
	case hp := <-r.h.gate.held:
		r.st.heldScans++
		r.logf("%d: scan, page %d %q held while:", i, page+1, hp.keys)
		for n := 1 + r.rng.IntN(3); n > 0; n-- {
			// Mostly the held page's keys: their listing is the one
			// going stale.
			key := ""
			if len(hp.keys) > 0 && r.rng.IntN(4) != 0 {
				key = hp.keys[r.rng.IntN(len(hp.keys))]
			}
			switch k := r.rng.IntN(10); {
			case k < 4:
				r.bucketPut(i, key, 7)
			case k < 6:
				r.bucketDelete(i, key, 7)
			case k < 9:
				r.deliverOne(i)
			case !r.lossless:
				r.lose(i)
			}
		}
		close(hp.release)
		r.logf("%d: scan released", i)
	case err := <-done:
		r.logf("%d: scan (listing had fewer than %d pages)", i, page+1)
		if err != nil {
			r.t.Fatalf("step %d: scan: %v", i, err)
		}
		return
	case <-time.After(deadline):
		r.t.Fatalf("step %d: scan neither listed page %d nor ended within %v", i, page+1, deadline)
	}
	if err := r.h.scanResult(done); err != nil {
		r.t.Fatalf("step %d: held scan: %v", i, err)
	}
}

func (r *run) crash(i int) {
	u := r.h.unpublished()
	r.logf("%d: crash (%d changes unpublished)", i, u)
	r.st.crashes++
	if u > 0 {
		r.st.crashesUnpublished++
	}
	r.h.crash()
	r.h.start()
}

// crashAckLost crashes the worker after an event reached the stream but
// before its ack reached the worker: the outbox still holds its changes.
// (Where the publisher holds events for the shutdown flush, nothing is
// published to lose an ack of: a plain crash.)
func (r *run) crashAckLost(i int) {
	if r.h.cfg.Events.CoalesceWindow >= time.Minute {
		r.crash(i)
		return
	}
	// The event in flight must be this put's alone: one published before
	// the freeze would hold the publisher waiting for its ack.
	r.h.waitPublished()
	r.h.waitAcked()
	r.h.proxy.freeze()
	r.bucketPut(i, "", 10)
	r.h.waitPublished()
	r.logf("%d: crash with the last event's ack lost", i)
	r.st.crashes++
	r.st.crashesAckLost++
	r.h.reap(r.h.closeAbruptly())
	r.h.proxy.thaw()
	r.h.start()
}

// crashInScan crashes the worker while a scan waits for a list page.
func (r *run) crashInScan(i int) {
	page := r.rng.IntN(3)
	r.h.gate.arm(page)
	defer r.h.gate.disarm()
	done := r.h.scanAsync()
	select {
	case hp := <-r.h.gate.held:
		u := r.h.unpublished()
		r.logf("%d: crash while the scan waits for page %d (%d changes unpublished)", i, page+1, u)
		r.st.crashes++
		r.st.crashesInScan++
		if u > 0 {
			r.st.crashesUnpublished++
		}
		w := r.h.closeAbruptly()
		close(hp.release)
		if err := r.h.scanResult(done); err == nil {
			r.t.Errorf("step %d: a scan whose catalog was closed under it reported success", i)
		}
		r.h.reap(w)
		r.h.start()
	case err := <-done:
		r.logf("%d: scan (listing had fewer than %d pages; no crash)", i, page+1)
		if err != nil {
			r.t.Fatalf("step %d: scan: %v", i, err)
		}
	case <-time.After(deadline):
		r.t.Fatalf("step %d: scan neither listed page %d nor ended within %v", i, page+1, deadline)
	}
}

func (r *run) restart(i int) {
	r.logf("%d: restart (graceful: flush)", i)
	r.h.stop()
	r.h.start()
}

// finish lets S3's last notifications arrive or get lost, runs a scan of
// the quiet bucket, stops the worker (flushing the outbox) and checks.
func (r *run) finish() {
	t := r.t
	if r.lossless {
		r.checkpoint(-1)
	}
	for len(r.pending) > 0 {
		rec, _ := r.take()
		if r.rng.IntN(2) == 0 {
			r.h.deliver(rec)
			r.st.delivered++
			r.logf("end: deliver %v", rec)
		} else {
			r.st.lost++
			r.logf("end: lose %v", rec)
		}
	}
	r.logf("end: quiet scan, stop")
	if err := r.h.scanResult(r.h.scanAsync()); err != nil {
		t.Fatalf("final scan: %v", err)
	}
	r.h.stop()

	bucketNow := r.h.listBucket()
	want := map[string]object{}
	for k, b := range r.model {
		want[k] = object{Size: int64(len(b)), ETag: md5Hex(b)}
	}
	if d := diff(want, bucketNow); d != "" {
		t.Fatalf("test bug: the bucket is not what the sequence made it:\n%s", d)
	}

	// (1) the catalog is the bucket.
	cat, cst, instance := r.h.catalogObjects()
	if d := diff(bucketNow, cat); d != "" {
		t.Errorf("catalog differs from the bucket (want bucket, got catalog):\n%s", d)
	}
	if cst.Objects != uint64(len(cat)) {
		t.Errorf("catalog counts %d objects, holds %d", cst.Objects, len(cat))
	}
	if cst.Pending != 0 {
		t.Errorf("outbox holds %d changes after the shutdown flush", cst.Pending)
	}

	// (3) every committed change once, in order, from this instance.
	evs := r.h.readStream()
	var last uint64
	for _, se := range evs {
		d := se.ev.Data
		wantID := events.MessageID(instance, sourceID, d.FirstSeq, d.LastSeq)
		if se.ev.ID != wantID || se.msgID != wantID {
			t.Errorf("stream message %d: id %q, Nats-Msg-Id %q, want %q", se.streamSeq, se.ev.ID, se.msgID, wantID)
		}
		if d.FirstSeq != last+1 {
			t.Errorf("stream message %d (%s): changes %d-%d follow %d: %s", se.streamSeq, se.ev.ID, d.FirstSeq, d.LastSeq, last,
				map[bool]string{true: "a repeat", false: "a gap"}[d.FirstSeq <= last])
		}
		if d.LastSeq < d.FirstSeq || len(d.Changes) != int(d.LastSeq-d.FirstSeq+1) {
			t.Errorf("stream message %d: range %d-%d with %d changes", se.streamSeq, d.FirstSeq, d.LastSeq, len(d.Changes))
		}
		for j, c := range d.Changes {
			if c.Seq != d.FirstSeq+uint64(j) {
				t.Errorf("stream message %d: change %d has seq %d, want %d", se.streamSeq, j, c.Seq, d.FirstSeq+uint64(j))
			}
		}
		last = d.LastSeq
	}
	if last != cst.LastSeq {
		t.Errorf("the stream's changes end at %d, the catalog's at %d", last, cst.LastSeq)
	}

	// (2) replaying the stream from empty yields the bucket.
	replay := map[string]object{}
	for _, se := range evs {
		for _, c := range se.ev.Data.Changes {
			_, present := replay[c.Key]
			switch c.Op {
			case "added":
				if present {
					t.Errorf("replay: change %d adds %q, which is present", c.Seq, c.Key)
				}
				replay[c.Key] = object{Size: c.Size, ETag: c.ETag}
			case "modified":
				if !present {
					t.Errorf("replay: change %d modifies %q, which is absent", c.Seq, c.Key)
				}
				replay[c.Key] = object{Size: c.Size, ETag: c.ETag}
			case "deleted":
				if !present {
					t.Errorf("replay: change %d deletes %q, which is absent", c.Seq, c.Key)
				}
				delete(replay, c.Key)
			default:
				t.Errorf("replay: change %d has op %q", c.Seq, c.Op)
			}
		}
		r.st.changes += len(se.ev.Data.Changes)
	}
	r.st.events += len(evs)
	if d := diff(bucketNow, replay); d != "" {
		t.Errorf("replaying the stream does not yield the bucket (want bucket, got replay):\n%s", d)
	}
}

// diff describes how got differs from want, "" when equal.
func diff(want, got map[string]object) string {
	var out []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("  missing %q (size %d, etag %s)", k, w.Size, w.ETag))
		case g != w:
			out = append(out, fmt.Sprintf("  %q: size %d etag %s, want size %d etag %s", k, g.Size, g.ETag, w.Size, w.ETag))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("  extra %q (size %d, etag %s)", k, g.Size, g.ETag))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}
