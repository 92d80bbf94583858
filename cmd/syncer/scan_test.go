package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imgly/syncer/internal/testkit"
)

func TestScanCommand(t *testing.T) {
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "bkt")
	for _, k := range []string{"images/a.jpg", "images/b.png", "images/c.txt", "other/d.jpg"} {
		s3.Put(t, "bkt", k, []byte(k), "")
	}
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := fmt.Sprintf(`
nats: {url: %q}
catalog: {path: %q}
sources:
  - {id: imgs, provider: s3, bucket: bkt, prefix: images/, include: ["*.jpg", "*.png"],
     s3: {endpoint: %q, pathStyle: true}}
  - {id: missing, provider: s3, bucket: no-such-bucket, s3: {endpoint: %q, pathStyle: true}}
`, n.URL, t.TempDir(), s3.URL, s3.URL)
	path := writeConfig(t, cfg)

	code, stdout, stderr := runCLI(t, "scan", "--config", path, "--source", "imgs")
	if code != 0 {
		t.Fatalf("scan: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"3 listed, 2 matched, 2 added, 0 modified, 0 deleted", "published 1 events"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout %q lacks %q", stdout, want)
		}
	}
	code, stdout, _ = runCLI(t, "scan", "--config", path, "--source", "imgs")
	if code != 0 || !strings.Contains(stdout, "0 added, 0 modified, 0 deleted") || !strings.Contains(stdout, "published 0 events") {
		t.Errorf("rescan: exit %d, %q", code, stdout)
	}

	code, stdout, stderr = runCLI(t, "events", "tail", "--nats", n.URL, "--source", "imgs", "--all", "-n", "1")
	if code != 0 || !strings.Contains(stdout, `"type":"io.syncer.contents.changed.v1"`) || !strings.Contains(stdout, `"key":"images/b.png"`) {
		t.Errorf("events tail: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	code, stdout, _ = runCLI(t, "catalog", "ls", "--config", path, "--source", "imgs")
	if code != 0 || strings.Count(stdout, "\n") != 2 || !strings.Contains(stdout, `"key":"images/a.jpg"`) {
		t.Errorf("catalog ls: exit %d, %q", code, stdout)
	}
	for prefix, want := range map[string][]string{
		"images/b":     {"images/b.png"},
		"images/a.jpg": {"images/a.jpg"}, // the prefix is a key itself
		"images/":      {"images/a.jpg", "images/b.png"},
		"images/c":     nil,
	} {
		code, stdout, _ = runCLI(t, "catalog", "ls", "--config", path, "--source", "imgs", "--prefix", prefix)
		if code != 0 || strings.Count(stdout, "\n") != len(want) {
			t.Errorf("catalog ls --prefix %s: exit %d, %q, want %v", prefix, code, stdout, want)
		}
		for _, k := range want {
			if !strings.Contains(stdout, `"key":"`+k+`"`) {
				t.Errorf("catalog ls --prefix %s: %q lacks %s", prefix, stdout, k)
			}
		}
	}
	code, stdout, _ = runCLI(t, "catalog", "ls", "--config", path, "--source", "imgs", "--prefix", "images/", "--limit", "1")
	if code != 0 || strings.Count(stdout, "\n") != 1 {
		t.Errorf("catalog ls --limit 1: exit %d, %q", code, stdout)
	}

	code, _, stderr = runCLI(t, "scan", "--config", path, "--source", "missing")
	if code == 0 || !strings.Contains(stderr, "FAILED, no deletions applied") {
		t.Errorf("scan of a missing bucket: exit %d, stderr %q", code, stderr)
	}
}
