package worker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
)

// TestJetStreamClusterLosesANode: with nats.replicas 3 on a three-node
// JetStream cluster, killing the stream's leader loses nothing and doubles
// nothing: the worker goes on publishing through the new leader, and a
// subscriber sees every change once, with contiguous sequence numbers.
func TestJetStreamClusterLosesANode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := testkit.StartNATSCluster(t, 3)
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names := func(prefix string, from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("%s%03d.png", prefix, i))
		}
		return out
	}
	for _, n := range names("f", 0, 20) {
		write(n, "v1")
	}
	cfg := testConfig(t, c.URL(), config.Source{ID: "media", Provider: "local", Path: root})
	cfg.NATS.Replicas = 3
	w := start(t, cfg)
	sub := subscribe(t, c.URL(), cfg.NATS.Stream, "syncer.changed.media")
	sub.expect(added(names("f", 0, 20)...)...)

	// The stream is replicated three times; kill the node that leads it.
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, cfg.NATS.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream: replicas %d, cluster %+v; want 3 (a leader and two followers)", info.Config.Replicas, info.Cluster)
	}
	leader := c.Server(info.Cluster.Leader)
	if leader == nil {
		t.Fatalf("no running server named %q", info.Cluster.Leader)
	}
	leader.Shutdown()

	// Changes after the loss: modified, added, deleted.
	for _, n := range names("f", 0, 5) {
		write(n, "v2 is longer")
	}
	for _, n := range names("g", 0, 20) {
		write(n, "new")
	}
	for _, n := range names("f", 15, 20) {
		if err := os.Remove(filepath.Join(root, n)); err != nil {
			t.Fatal(err)
		}
	}
	w.scan(t, "media")
	var want []change
	for _, n := range names("f", 0, 5) {
		want = append(want, change{"modified", n})
	}
	want = append(want, added(names("g", 0, 20)...)...)
	for _, n := range names("f", 15, 20) {
		want = append(want, change{"deleted", n})
	}
	sub.expect(want...)
	w.drained(t)
	sub.none()
	// The events after the loss went through a new leader. This client may
	// have been on the lost node: ask until it has reconnected.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for info, err = st.Info(ctx); err != nil; info, err = st.Info(ctx) {
		select {
		case <-ctx.Done():
			t.Fatalf("stream info after the loss: %v", err)
		case <-time.After(50 * time.Millisecond): // polling a reconnect, with a deadline
		}
	}
	if info.Cluster.Leader == leader.Server.Name() || info.State.Msgs < 2 {
		t.Fatalf("after the loss: leader %q (the lost one was %q), %d messages", info.Cluster.Leader, leader.Server.Name(), info.State.Msgs)
	}
	t.Logf("leader %s lost; %s leads; %d messages", leader.Server.Name(), info.Cluster.Leader, info.State.Msgs)
}
