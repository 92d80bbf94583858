package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

func writeTen(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i := range 10 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.txt", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func removeNine(t *testing.T, dir string) {
	t.Helper()
	for i := 1; i < 10; i++ {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("f%d.txt", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// A local scan that would delete 9 of 10 is held (exit 1, the numbers and
// the way out said); --allow-mass-delete applies it.
func TestScanHeldAndReleasedLocally(t *testing.T) {
	dir := writeTen(t)
	path := writeConfig(t, fmt.Sprintf(`
nats: {url: "nats://127.0.0.1:1"}
catalog: {path: %q}
sources:
  - {id: loc, provider: local, path: %q, settle: 0s}
`, t.TempDir(), dir))
	if code, stdout, stderr := runCLI(t, "scan", "--config", path, "--source", "loc", "--publish=false"); code != 0 || !strings.Contains(stdout, "10 added") {
		t.Fatalf("first scan: exit %d %q %q", code, stdout, stderr)
	}
	removeNine(t, dir)
	code, stdout, stderr := runCLI(t, "scan", "--config", path, "--source", "loc", "--publish=false")
	if code == 0 || !strings.Contains(stdout, "0 deleted") || !strings.Contains(stdout, "deletions HELD") ||
		!strings.Contains(stderr, "held: would delete 9 of 10 (90% > 50%); release with syncer scan --allow-mass-delete") {
		t.Fatalf("held scan: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "scan", "--config", path, "--source", "loc", "--publish=false", "--allow-mass-delete")
	if code != 0 || !strings.Contains(stdout, "9 deleted") {
		t.Fatalf("release: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// Against a running worker: `scan --url` needs an admin token; a held scan
// shows in `syncer status`; --allow-mass-delete releases it.
func TestScanHeldAndReleasedOnWorker(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	dir := writeTen(t)
	port := freePort(t)
	path := writeConfig(t, fmt.Sprintf(`
nats: {url: %q}
catalog: {path: %q}
http: {listen: "127.0.0.1:%d", auth: {adminTokens: ["the-admin-token"]}}
sources:
  - {id: loc, provider: local, path: %q, settle: 0s, schedule: "@every 1h", watch: false}
`, n.URL, t.TempDir(), port, dir))
	// watch: false: the watch would delete each file as it goes (a
	// notification is not held), and this is the scan's guard.
	p := start(t, nil, "run", "--config", path)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, url+"/healthz", p)
	// The start-up scan may still run: a scan asked for now answers
	// "already running" until it has ended.
	scan := func(env []string, args ...string) (int, string, string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, stdout, stderr := runCLIEnv(t, env, append([]string{"scan", "--url", url, "--source", "loc"}, args...)...)
			if !strings.Contains(stderr, "already running") {
				return code, stdout, stderr
			}
			if time.Now().After(deadline) {
				t.Fatalf("the start-up scan did not end within 30 s: %s", stderr)
			}
		}
	}
	if code, stdout, stderr := scan([]string{"SYNCER_TOKEN=the-admin-token"}); code != 0 || !strings.Contains(stdout, "0 deleted") {
		t.Fatalf("scan: exit %d %q %q", code, stdout, stderr)
	}
	removeNine(t, dir)
	if code, _, stderr := scan(nil, "--allow-mass-delete"); code == 0 || !strings.Contains(stderr, "unauthorized: give --token or SYNCER_TOKEN") {
		t.Fatalf("without a token: exit %d %q", code, stderr)
	}
	if code, _, stderr := scan(nil, "--allow-mass-delete", "--token", "wrong"); code == 0 || !strings.Contains(stderr, "does not accept this token") {
		t.Fatalf("wrong token: exit %d %q", code, stderr)
	}
	code, stdout, stderr := scan(nil, "--token", "the-admin-token")
	if code == 0 || !strings.Contains(stdout, "deletions HELD") || !strings.Contains(stderr, "would delete 9 of 10") {
		t.Fatalf("held: exit %d %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "status", "--url", url)
	if code != 0 || !strings.Contains(stdout, "held") || !strings.Contains(stdout, "loc: last scan held: would delete 9 of 10 (90% > 50%)") {
		t.Fatalf("status: exit %d %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = scan([]string{"SYNCER_TOKEN=the-admin-token"}, "--allow-mass-delete")
	if code != 0 || !strings.Contains(stdout, "scan loc: 1 listed, 1 matched, 0 added, 0 modified, 9 deleted") {
		t.Fatalf("release: exit %d %q %q", code, stdout, stderr)
	}
	// --config while the worker holds the catalog asks the worker.
	code, stdout, stderr = runCLIEnv(t, []string{"SYNCER_TOKEN=the-admin-token"}, "scan", "--config", path, "--source", "loc")
	if code != 0 || !strings.Contains(stdout, "scan loc: 1 listed, 1 matched, 0 added, 0 modified, 0 deleted") {
		t.Fatalf("scan --config with the worker running: exit %d %q %q", code, stdout, stderr)
	}
	if c := p.stop(t); c != 0 {
		t.Fatalf("exit %d; stderr: %s", c, p.stderr)
	}
}
