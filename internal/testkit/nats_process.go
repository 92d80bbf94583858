package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// natsBinary builds nats-server (the module syncer embeds, at the version
// go.mod names) once per test binary.
var natsBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "syncer-nats-server")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nats-server")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build nats-server: %v\n%s", err, out)
	}
	return bin, nil
})

// NATSProcess is a nats-server running as its own process from a config
// file, for tests that reload it the way an operator does (rewrite the file,
// SIGHUP). In-process reloads of changed users race inside nats-server
// v2.15 under the race detector; a separate process keeps that out of the
// test's binary.
type NATSProcess struct {
	URL  string
	conf string
	port int
	cmd  *exec.Cmd
}

// StartNATSProcess starts nats-server with JetStream on a free loopback port,
// its store in storeDir, and extra (a nats-server config fragment, e.g. an
// authorization block) appended to the config.
func StartNATSProcess(t testing.TB, storeDir, extra string) *NATSProcess {
	t.Helper()
	bin, err := natsBinary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	n := &NATSProcess{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), conf: filepath.Join(t.TempDir(), "nats.conf"), port: port}
	n.write(t, storeDir, extra)
	n.cmd = exec.Command(bin, "-c", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = t.Output(), t.Output()
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		n.cmd.Wait()                          //nolint:errcheck
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not listen on %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the port with a deadline
	}
}

func (n *NATSProcess) write(t testing.TB, storeDir, extra string) {
	t.Helper()
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream {store_dir: %q}\n%s\n", n.port, storeDir, extra)
	if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Reload rewrites the config with extra in place of the old fragment and
// signals the server to reload it (SIGHUP), as an operator would.
func (n *NATSProcess) Reload(t testing.TB, storeDir, extra string) {
	t.Helper()
	n.write(t, storeDir, extra)
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}
