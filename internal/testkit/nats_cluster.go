package testkit

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATSCluster is a JetStream cluster of embedded nats-servers on loopback,
// routed to each other: what nats.replicas > 1 needs.
type NATSCluster struct {
	Servers []*NATS
}

// StartNATSCluster starts n servers (named n0, n1, …) in one cluster and
// waits until JetStream has a meta leader.
func StartNATSCluster(t testing.TB, n int) *NATSCluster {
	t.Helper()
	// Route ports must be known before any server starts: take free ones.
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	c := &NATSCluster{}
	for i := range n {
		opts := &natsserver.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: natsserver.ClusterOpts{Name: "syncer-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  natsserver.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := natsserver.NewServer(opts)
		if err != nil {
			t.Fatalf("nats-server n%d: %v", i, err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats-server n%d not ready", i)
		}
		srv := &NATS{Server: s, URL: s.ClientURL(), Port: s.Addr().(*net.TCPAddr).Port}
		t.Cleanup(srv.Shutdown)
		c.Servers = append(c.Servers, srv)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.metaLeader() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the JetStream cluster elected no meta leader in 30 s")
		}
		time.Sleep(20 * time.Millisecond) // polling the servers' own state; there is no event to wait on
	}
	return c
}

// URL is the comma-separated client URL of every server still running.
func (c *NATSCluster) URL() string {
	var urls []string
	for _, s := range c.Servers {
		if s.Server.Running() {
			urls = append(urls, s.URL)
		}
	}
	return strings.Join(urls, ",")
}

// Server returns the running server named name, or nil.
func (c *NATSCluster) Server(name string) *NATS {
	for _, s := range c.Servers {
		if s.Server.Name() == name && s.Server.Running() {
			return s
		}
	}
	return nil
}

func (c *NATSCluster) metaLeader() *NATS {
	for _, s := range c.Servers {
		if s.Server.Running() && s.Server.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}
