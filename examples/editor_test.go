package examples_test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/livetest"
)

// chromium is Debian's browser, which scripts/test.sh installs.
func chromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("/usr/bin/chromium is absent: apt-get install chromium (scripts/test.sh does) to run the browser test")
	}
}

// TestEditorInBrowser: examples/editor in headless chromium, offline, sees
// an upload to the bucket appear and a delete disappear, over SSE (through
// serve.mjs's proxy) and over NATS WebSocket.
func TestEditorInBrowser(t *testing.T) {
	chromium(t)
	node := livetest.Node(t, "playwright-core", "@cesdk/engine", "esbuild", "@nats-io/nats-core")
	for _, transport := range []string{"sse", "nats"} {
		t.Run(transport, func(t *testing.T) {
			s := livetest.Start(t, livetest.Options{Sources: []string{"media"}})
			cmd := exec.Command(node, "editor/test/browser.mjs")
			cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SOURCE=media", "TRANSPORT="+transport, "NATS_URL="+s.WSURL)
			res := s.Run(t, 3*time.Minute, cmd)
			t.Logf("browser over %s: %v", transport, res)
		})
	}
}
