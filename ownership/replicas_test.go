package ownership_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
)

// binary is syncer, built once for the package's tests: the replicas are
// real processes, so that a SIGKILL or SIGSTOP hits everything at once.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "syncer-ha-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "syncer")
	build := exec.Command("go", "build", "-o", binary, "../cmd/syncer")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build syncer: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is three syncer replicas on one PostgreSQL catalog and one
// nats-server, with local-directory sources.
type cluster struct {
	t    *testing.T
	dsn  string
	cfg  string // without catalog: each replica's names its DSN
	ids  []string
	dirs map[string]string // source id -> directory (local sources)
	// want is each source's objects (key -> size) once everything is
	// published (nil: its directory's files).
	want func(id string) map[string]int64
	http map[string]string // replica -> its http.listen ("off" if none)
	db   *pgx.Conn

	mu    sync.Mutex
	procs map[string]*replica
}

type replica struct {
	id  string
	cmd *exec.Cmd
	log *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startCluster prepares a cluster of local-directory sources s1..sN.
func startCluster(t *testing.T, natsURL string, sources int) *cluster {
	t.Helper()
	dirs := map[string]string{}
	var lines []string
	for i := 1; i <= sources; i++ {
		id := fmt.Sprintf("s%d", i)
		dirs[id] = t.TempDir()
		lines = append(lines, fmt.Sprintf("{id: %s, provider: local, path: %q, schedule: \"@every 1s\", settle: 0s}", id, dirs[id]))
	}
	c := newCluster(t, natsURL, lines)
	c.dirs = dirs
	return c
}

// newCluster prepares a cluster whose sources are the YAML flow mappings
// in sources, with ids s1..sN in order.
func newCluster(t *testing.T, natsURL string, sources []string) *cluster {
	t.Helper()
	c := &cluster{t: t, dsn: testkit.StartPostgres(t).NewDatabase(t), procs: map[string]*replica{}, http: map[string]string{}}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "nats: {url: %q, stream: HA}\nlog: {level: info}\nsources:\n", natsURL)
	for i, line := range sources {
		c.ids = append(c.ids, fmt.Sprintf("s%d", i+1))
		fmt.Fprintf(&cfg, "  - %s\n", line)
	}
	c.cfg = cfg.String()
	db, err := pgx.Connect(t.Context(), c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	c.db = db
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.procs {
			p.cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck // it may be stopped
			p.cmd.Process.Kill()                  //nolint:errcheck // may have exited
			p.cmd.Wait()                          //nolint:errcheck // killed
		}
		db.Close(context.Background())
	})
	return c
}

func (c *cluster) start(id string) { c.startVia(id, c.dsn) }

// startVia starts replica id reaching PostgreSQL at dsn.
func (c *cluster) startVia(id, dsn string) {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), "syncer.yaml")
	listen := cmp.Or(c.http[id], "off")
	if err := os.WriteFile(path, fmt.Appendf(nil, "catalog: {url: %q}\nhttp: {listen: %q}\n%s", dsn, listen, c.cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	p := &replica{id: id, log: &lockedBuffer{}}
	p.cmd = exec.Command(binary, "run", "--config", path, "--replica-id", id)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.procs[id] = p
	c.mu.Unlock()
}

func (c *cluster) proc(id string) *replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[id]
}

func (c *cluster) kill(id string) {
	c.t.Helper()
	p := c.proc(id)
	if err := p.cmd.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	p.cmd.Wait() //nolint:errcheck // killed
}

// owners is the live lease of each source: its owner.
func (c *cluster) owners(ctx context.Context) map[string]string {
	rows, err := c.db.Query(ctx, "SELECT source, owner FROM syncer_leases WHERE expires_at > now() AND source NOT LIKE 'replica:%'")
	if err != nil && strings.Contains(err.Error(), "42P01") {
		return map[string]string{} // the replicas have not migrated the catalog yet
	}
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	defer rows.Close()
	for rows.Next() {
		var s, o string
		if err := rows.Scan(&s, &o); err != nil {
			c.t.Fatal(err)
		}
		out[s] = o
	}
	if err := rows.Err(); err != nil && !strings.Contains(err.Error(), "42P01") {
		c.t.Fatal(err) // 42P01: the replicas have not migrated the catalog yet
	}
	return out
}

func (c *cluster) lastSeq(ctx context.Context, source string) uint64 {
	var seq int64
	err := c.db.QueryRow(ctx, "SELECT seq FROM syncer_sources WHERE id = $1", source).Scan(&seq)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		c.t.Fatal(err)
	}
	return uint64(seq)
}

// waitOwned waits until every source has an owner, and returns them.
func (c *cluster) waitOwned(ctx context.Context, d time.Duration, ok func(map[string]string) bool) map[string]string {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		o := c.owners(ctx)
		if len(o) == len(c.ids) && (ok == nil || ok(o)) {
			return o
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("sources not owned as wanted within %v: %v", d, o)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// subscriber collects every event of the stream.
type subscriber struct {
	mu     sync.Mutex
	t      *testing.T
	seen   map[string]map[uint64]events.Change // source -> seq -> change
	events map[string][]events.CloudEvent
	dups   []string
}

func subscribe(t *testing.T, natsURL string) *subscriber {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The stream is created here, as syncer would, so the subscriber
	// sees it from the first event.
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "HA", Subjects: []string{"syncer.changed.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := &subscriber{t: t, seen: map[string]map[uint64]events.Change{}, events: map[string][]events.CloudEvent{}}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := events.Decode(m.Data())
		if err != nil {
			t.Errorf("event does not decode: %v", err)
			return
		}
		s.add(ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return s
}

func (s *subscriber) add(ev events.CloudEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := ev.Data
	m := s.seen[d.SourceID]
	if m == nil {
		m = map[uint64]events.Change{}
		s.seen[d.SourceID] = m
	}
	for _, ch := range d.Changes {
		if _, dup := m[ch.Seq]; dup {
			s.dups = append(s.dups, fmt.Sprintf("%s seq %d (event %s)", d.SourceID, ch.Seq, ev.ID))
		}
		m[ch.Seq] = ch
	}
	s.events[d.SourceID] = append(s.events[d.SourceID], ev)
}

// writer uploads, overwrites and deletes files in the sources'
// directories, remembering every size written per key, so that a
// published change can be told real or phantom.
type writer struct {
	mu      sync.Mutex
	sizes   map[string]map[int64]bool // dir/key -> sizes written
	deleted map[string]bool
	tmp     string // on the directories' file system
}

func newWriter(t *testing.T) *writer {
	return &writer{sizes: map[string]map[int64]bool{}, deleted: map[string]bool{}, tmp: t.TempDir()}
}

func (w *writer) run(ctx context.Context, t *testing.T, dirs map[string]string, done chan<- struct{}) {
	defer close(done)
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, 0, len(dirs))
	for id := range dirs {
		ids = append(ids, id)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		id := ids[rng.IntN(len(ids))]
		key := fmt.Sprintf("k%02d", rng.IntN(30))
		path := filepath.Join(dirs[id], key)
		w.mu.Lock()
		if rng.IntN(5) == 0 {
			if os.Remove(path) == nil {
				w.deleted[id+"/"+key] = true
			}
		} else {
			size := int64(1 + rng.IntN(4000))
			// Written aside and renamed in: a scan must not see a
			// half-written file, which would be a size never written.
			tmp := filepath.Join(w.tmp, key)
			if err := os.WriteFile(tmp, bytes.Repeat([]byte("x"), int(size)), 0o600); err != nil {
				t.Error(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Error(err)
			}
			if w.sizes[id+"/"+key] == nil {
				w.sizes[id+"/"+key] = map[int64]bool{}
			}
			w.sizes[id+"/"+key][size] = true
		}
		w.mu.Unlock()
	}
}

// check verifies the subscriber's view once everything is published: each
// source's changes 1..lastSeq seen exactly once, none a phantom, and the
// changes replayed give the directory's files. The writer has stopped; the
// replicas' scans converge on the directories first.
func (c *cluster) check(ctx context.Context, s *subscriber, w *writer) {
	c.t.Helper()
	for _, id := range c.ids {
		deadline := time.Now().Add(30 * time.Second)
		for {
			diff := c.replayDiff(ctx, s, id)
			if diff == "" {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s: the events do not converge on the source's objects: %s", id, diff)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range s.dups {
		c.t.Errorf("change published twice: %s", d)
	}
	for _, id := range c.ids {
		last := c.lastSeq(ctx, id)
		c.t.Logf("%s: %d changes, %d events", id, last, len(s.events[id]))
		if n := uint64(len(s.seen[id])); n != last {
			c.t.Errorf("%s: %d changes seen, catalog has %d", id, n, last)
		}
		for seq := uint64(1); seq <= last; seq++ {
			ch, ok := s.seen[id][seq]
			switch {
			case !ok:
				c.t.Errorf("%s: change %d never published", id, seq)
			case ch.Op == "deleted" && !w.deleted[id+"/"+ch.Key]:
				c.t.Errorf("%s: phantom deletion %d of %s", id, seq, ch.Key)
			case ch.Op != "deleted" && !w.sizes[id+"/"+ch.Key][ch.Size]:
				c.t.Errorf("%s: phantom %s %d of %s (size %d)", id, ch.Op, seq, ch.Key, ch.Size)
			}
		}
	}
}

// replayDiff replays source id's events seen so far in sequence order and
// says how the result differs from the directory ("" when it does not and
// everything the catalog holds was seen).
func (c *cluster) replayDiff(ctx context.Context, s *subscriber, id string) string {
	last := c.lastSeq(ctx, id)
	s.mu.Lock()
	state := map[string]int64{}
	for seq := uint64(1); seq <= last; seq++ {
		ch, ok := s.seen[id][seq]
		if !ok {
			s.mu.Unlock()
			return fmt.Sprintf("change %d of %d not seen yet", seq, last)
		}
		if ch.Op == "deleted" {
			delete(state, ch.Key)
		} else {
			state[ch.Key] = ch.Size
		}
	}
	s.mu.Unlock()
	want := c.objects(id)
	if len(want) != len(state) {
		return fmt.Sprintf("replaying gives %d objects, the source holds %d", len(state), len(want))
	}
	for key, size := range want {
		if sz, ok := state[key]; !ok || sz != size {
			return fmt.Sprintf("%s (size %d) replays as %d, %v", key, size, sz, ok)
		}
	}
	return ""
}

// objects is what source id holds: c.want's answer, or its directory's.
func (c *cluster) objects(id string) map[string]int64 {
	if c.want != nil {
		return c.want(id)
	}
	files, _ := os.ReadDir(c.dirs[id])
	out := map[string]int64{}
	for _, f := range files {
		if info, err := f.Info(); err == nil {
			out[f.Name()] = info.Size()
		}
	}
	return out
}
