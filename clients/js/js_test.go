// Package js_test runs the JavaScript client's tests: its unit tests under
// node --test, and the client with the real CE.SDK engine against a running
// syncer over both transports.
package js_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/livetest"
)

func TestUnit(t *testing.T) {
	node := livetest.Node(t)
	files, err := filepath.Glob("test/*.test.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit tests in clients/js/test: %v", err)
	}
	out, err := exec.Command(node, append([]string{"--test", "--test-reporter=spec"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

const readerToken = "reader-token-for-tests"

func TestEngineSSE(t *testing.T) { testEngine(t, "sse") }

func TestEngineNATS(t *testing.T) { testEngine(t, "nats") }

// testEngine: upload, overwrite, delete and a syncer restart, seen by the
// @cesdk/node engine through the client (testdata/engine-live.mjs).
func testEngine(t *testing.T, transport string) {
	node := livetest.Node(t, "@cesdk/node", "@nats-io/nats-core")
	s := livetest.Start(t, livetest.Options{
		Sources:   []string{"media"},
		Configure: func(c *config.Config) { c.HTTP.Auth.Tokens = []string{readerToken} },
	})
	cmd := exec.Command(node, "testdata/engine-live.mjs")
	cmd.Env = append(os.Environ(), "BASE_URL="+s.URL, "SOURCE=media", "TOKEN="+readerToken,
		"TRANSPORT="+transport, "NATS_URL="+s.WSURL)
	res := s.Run(t, 3*time.Minute, cmd)
	t.Logf("engine over %s: %v", transport, res)
}
