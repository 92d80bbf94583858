package ownership_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

const hookToken = "rolling-hook-token"

// notifier uploads objects to S3 and announces each on a replica's webhook
// (any live one: they all apply notifications), retrying on another while
// one restarts, so that every upload is announced.
type notifier struct {
	s3      *testkit.S3
	buckets map[string]string // source -> bucket
	c       *cluster
	w       *writer

	mu     sync.Mutex
	latest map[string]map[string]int64 // source -> key -> size
	sent   int
}

// run uploads until stop is closed; an upload under way is announced
// before it returns (ctx only bounds the whole test).
func (n *notifier) run(ctx context.Context, t *testing.T, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	rng := rand.New(rand.NewPCG(3, 4))
	for seq := 1; ctx.Err() == nil; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		id := n.c.ids[rng.IntN(len(n.c.ids))]
		key := fmt.Sprintf("k%02d", rng.IntN(20))
		size := 1 + rng.IntN(2000)
		body := []byte(strings.Repeat("y", size))
		n.s3.Put(t, n.buckets[id], key, body, "application/octet-stream")
		sum := md5.Sum(body)
		n.w.mu.Lock()
		if n.w.sizes[id+"/"+key] == nil {
			n.w.sizes[id+"/"+key] = map[int64]bool{}
		}
		n.w.sizes[id+"/"+key][int64(size)] = true
		n.w.mu.Unlock()
		n.mu.Lock()
		n.latest[id][key] = int64(size)
		n.mu.Unlock()
		record := map[string]any{
			"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
			"eventTime": time.Now().UTC().Format(time.RFC3339Nano), "eventName": "ObjectCreated:Put",
			"s3": map[string]any{
				"s3SchemaVersion": "1.0", "bucket": map[string]any{"name": n.buckets[id]},
				"object": map[string]any{"key": key, "size": size, "eTag": hex.EncodeToString(sum[:]), "sequencer": fmt.Sprintf("%016X", seq)},
			},
		}
		msg, _ := json.Marshal(map[string]any{"Records": []any{record}})
		if !n.announce(ctx, rng, id, string(msg)) {
			return
		}
		n.mu.Lock()
		n.sent++
		n.mu.Unlock()
		time.Sleep(10 * time.Millisecond) //nolint:forbidigo // paces the load, not a synchronisation
	}
}

// announce posts msg to source id's webhook on live replicas until one
// answers 200.
func (n *notifier) announce(ctx context.Context, rng *rand.Rand, id, msg string) bool {
	for ctx.Err() == nil {
		addr := n.c.http[fmt.Sprintf("r%d", 1+rng.IntN(3))]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/webhooks/s3/"+id, strings.NewReader(msg))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+hookToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // backoff before the next replica
	}
	return false
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// All three replicas are restarted one after the other (SIGTERM, start
// again) while uploads are announced through their webhooks: every upload
// reaches the stream, no change twice, none a phantom.
func TestRollingRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 85*time.Second)
	defer cancel()
	nats := testkit.StartNATS(t, t.TempDir(), 0)
	sub := subscribe(t, nats.URL)
	s3 := testkit.StartS3(t, nil)
	buckets := map[string]string{}
	var lines []string
	for i := 1; i <= 3; i++ {
		id, bucket := fmt.Sprintf("s%d", i), fmt.Sprintf("rolling-%d", i)
		s3.CreateBucket(t, bucket)
		buckets[id] = bucket
		lines = append(lines, fmt.Sprintf(`{id: %s, provider: s3, bucket: %s, schedule: "@every 1h", s3: {endpoint: %q, region: us-east-1, pathStyle: true}, notifications: {webhook: {token: %q}}}`,
			id, bucket, s3.URL, hookToken))
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	c := newCluster(t, nats.URL, lines)
	replicas := []string{"r1", "r2", "r3"}
	for _, id := range replicas {
		c.http[id] = freeAddr(t)
		c.start(id)
	}
	c.waitOwned(ctx, 30*time.Second, spread)
	w := newWriter(t)
	n := &notifier{s3: s3, buckets: buckets, c: c, w: w, latest: map[string]map[string]int64{}}
	for _, id := range c.ids {
		n.latest[id] = map[string]int64{}
	}
	c.want = func(id string) map[string]int64 {
		n.mu.Lock()
		defer n.mu.Unlock()
		out := map[string]int64{}
		for k, v := range n.latest[id] {
			out[k] = v
		}
		return out
	}
	stopLoad := make(chan struct{})
	loaded := make(chan struct{})
	go n.run(ctx, t, stopLoad, loaded)
	// Under load: each restart waits for 20 more uploads announced.
	announced := func(more int) {
		n.mu.Lock()
		goal := n.sent + more
		n.mu.Unlock()
		for deadline := time.Now().Add(20 * time.Second); ; {
			n.mu.Lock()
			sent := n.sent
			n.mu.Unlock()
			if sent >= goal {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("uploads stalled at %d announced", sent)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, id := range replicas {
		announced(20)
		p := c.proc(id)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- p.cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s exited after SIGTERM: %v\n%s", id, err, tail(p.log.String(), 20))
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not exit within 30 s of SIGTERM", id)
		}
		c.start(id)
		c.waitOwned(ctx, 30*time.Second, spread)
		t.Logf("%s restarted; owners %v", id, c.owners(ctx))
	}
	c.checkStatus(ctx, "r2")
	announced(20)
	close(stopLoad)
	<-loaded
	n.mu.Lock()
	t.Logf("%d uploads announced", n.sent)
	n.mu.Unlock()
	defer func() {
		if t.Failed() {
			for _, id := range replicas {
				t.Logf("%s log:\n%s", id, tail(c.proc(id).log.String(), 60))
			}
		}
	}()
	c.check(ctx, sub, w)
}

// checkStatus reads replica id's /status: its replica id, and each source's
// owner and lease expiry as the lease table has them.
func (c *cluster) checkStatus(ctx context.Context, id string) {
	c.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.http[id]+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Replica string `json:"replica"`
		Sources []struct {
			ID           string     `json:"id"`
			Owner        string     `json:"owner"`
			LeaseExpires *time.Time `json:"leaseExpires"`
		} `json:"sources"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("/status of %s: %d %v", id, resp.StatusCode, err)
	}
	if st.Replica != id {
		c.t.Errorf("/status replica %q, want %q", st.Replica, id)
	}
	owners := c.owners(ctx)
	for _, s := range st.Sources {
		if s.Owner != owners[s.ID] || s.LeaseExpires == nil || s.LeaseExpires.IsZero() {
			c.t.Errorf("/status source %s: owner %q, lease expires %v; the lease table says %q", s.ID, s.Owner, s.LeaseExpires, owners[s.ID])
		}
	}
	if len(st.Sources) != len(c.ids) {
		c.t.Errorf("/status lists %d sources, want %d", len(st.Sources), len(c.ids))
	}
}
