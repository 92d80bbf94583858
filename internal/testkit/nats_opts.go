package testkit

import (
	"net"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// StartNATSWith starts nats-server with JetStream on a random loopback port
// storing in storeDir, after configure (nil for none) has adjusted its
// options: users, TLS, max_payload. The options are kept for Reload.
func StartNATSWith(t testing.TB, storeDir string, configure func(*natsserver.Options)) *ConfiguredNATS {
	t.Helper()
	opts := &natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: storeDir,
		NoLog: true, NoSigs: true,
	}
	if configure != nil {
		configure(opts)
	}
	s, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	n := &NATS{Server: s, URL: s.ClientURL(), Port: s.Addr().(*net.TCPAddr).Port}
	t.Cleanup(n.Shutdown)
	return &ConfiguredNATS{NATS: n, opts: opts}
}

// ConfiguredNATS is a server started by StartNATSWith.
type ConfiguredNATS struct {
	*NATS
	opts *natsserver.Options
}

// Reload applies changed options to the running server, as a config reload
// (SIGHUP) would: changed users take effect for clients already connected
// (those no longer authorized are disconnected).
func (n *ConfiguredNATS) Reload(t testing.TB, change func(*natsserver.Options)) {
	t.Helper()
	opts := n.opts.Clone()
	opts.Port = n.Port
	change(opts)
	if err := n.Server.ReloadOptions(opts); err != nil {
		t.Fatalf("nats-server reload: %v", err)
	}
	n.opts = opts
}
