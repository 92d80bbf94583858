package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/imgly/syncer/internal/testkit"
)

// `config check --connect` reaches every store and NATS a file names: all
// green exits 0; a missing bucket and NATS down are each a FAIL line of
// their own, the rest stay ok, and the exit is 1.
func TestConfigCheckConnect(t *testing.T) {
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "bkt")
	s3.Put(t, "bkt", "images/a.jpg", []byte("a"), "")
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := func(natsURL, bucket string) string {
		return writeConfig(t, fmt.Sprintf(`
nats: {url: %q}
catalog: {path: %q}
sources:
  - {id: imgs, provider: s3, bucket: %s, s3: {endpoint: %q, pathStyle: true}}
  - {id: files, provider: local, path: %q}
`, natsURL, t.TempDir(), bucket, s3.URL, t.TempDir()))
	}

	code, stdout, stderr := runCLI(t, "config", "check", "--connect", "--config", cfg(n.URL, "bkt"))
	if code != 0 || strings.Contains(stdout, "FAIL") {
		t.Fatalf("all reachable: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	dead := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	code, stdout, stderr = runCLI(t, "config", "check", "--connect", "--timeout", "20s", "--config", cfg(dead, "no-such-bucket"))
	if code != 1 {
		t.Fatalf("missing bucket and NATS down: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	fails := regexp.MustCompile(`(?m)^.*\bFAIL\b.*$`).FindAllString(stdout, -1)
	var bucketFail, natsFail bool
	for _, l := range fails {
		bucketFail = bucketFail || strings.Contains(l, "no-such-bucket")
		natsFail = natsFail || strings.Contains(strings.ToLower(l), "nats")
	}
	if !bucketFail || !natsFail {
		t.Errorf("want a FAIL line for the bucket and one for NATS; got:\n%s", stdout)
	}
	if !regexp.MustCompile(`(?m)^.*files.*\bok\b`).MatchString(stdout) {
		t.Errorf("the local source should still be ok:\n%s", stdout)
	}
	if !strings.Contains(stderr, "checks failed") || len(strings.Split(strings.TrimSpace(stderr), "\n")) != 1 {
		t.Errorf("stderr %q: want one line saying checks failed", stderr)
	}
}
