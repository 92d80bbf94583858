package worker_test

import (
	"net/url"
	"testing"

	"github.com/imgly/syncer/worker"
)

// TestEmbeddedNATSPortZero: `nats.listen: "127.0.0.1:0"` asks for a free
// port, as every other listener does; nats-server alone would read 0 as
// its default 4222. Two servers started so run side by side.
func TestEmbeddedNATSPortZero(t *testing.T) {
	var ports []string
	for range 2 {
		e, err := worker.StartEmbeddedNATS("127.0.0.1:0", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Shutdown)
		u, err := url.Parse(e.URL())
		if err != nil {
			t.Fatal(err)
		}
		if u.Port() == "4222" || u.Port() == "0" {
			t.Fatalf("listen 127.0.0.1:0 gave %s, want a free port", e.URL())
		}
		ports = append(ports, u.Port())
	}
	if ports[0] == ports[1] {
		t.Fatalf("both servers on port %s", ports[0])
	}
}
