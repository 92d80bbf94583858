package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "syncer.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", `
nats: {url: embedded}
sources:
  - id: a
    provider: s3
    bucket: b
    s3: {endpoint: "http://x", pathStlye: true}
`, "sources[0].s3.pathStlye: unknown key"},
		{"unknown top-level key", "natz: {url: embedded}\n", "natz: unknown key"},
		{"bad cron spec", `
nats: {url: embedded}
sources:
  - {id: a, provider: local, path: ./x, schedule: "every five minutes"}
`, "sources[0].schedule"},
		{"duplicate id", `
nats: {url: embedded}
sources:
  - {id: a, provider: local, path: ./x}
  - {id: a, provider: local, path: ./y}
`, `sources[1].id: "a" is already used by sources[0]`},
		{"unsafe id", `
nats: {url: embedded}
sources:
  - {id: "cloud.images", provider: local, path: ./x}
`, "sources[0].id"},
		{"missing bucket", `
nats: {url: embedded}
sources:
  - {id: a, provider: s3}
`, "sources[0].bucket: is required for provider s3"},
		{"unset variable", `
nats: {url: embedded}
sources:
  - {id: a, provider: s3, bucket: "${SYNCER_TEST_UNSET_BUCKET}"}
`, "sources[0].bucket: environment variable SYNCER_TEST_UNSET_BUCKET is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.yaml)
			for _, cmd := range [][]string{{"config", "check"}, {"run"}, {"scan", "--source", "a"}} {
				code, _, stderr := runCLI(t, append(cmd, "--config", path)...)
				if code == 0 {
					t.Fatalf("%v: exit 0 for a bad config", cmd)
				}
				if !strings.Contains(stderr, tc.want) {
					t.Errorf("%v: stderr %q does not contain %q", cmd, stderr, tc.want)
				}
			}
		})
	}
}

func TestConfigCheckOK(t *testing.T) {
	t.Setenv("SYNCER_TEST_BUCKET", "my-bucket")
	path := writeConfig(t, `
nats:    {url: "nats://127.0.0.1:4222", stream: SYNCER, subjectPrefix: syncer.changed}
catalog: {path: ./data}
http:    {listen: "127.0.0.1:8080"}
sources:
  - id: cloud-images
    provider: s3
    bucket: ${SYNCER_TEST_BUCKET}
    prefix: images/
    include: ["*.jpg", "*.png"]
    schedule: "@every 5m"
    s3: {endpoint: "http://127.0.0.1:9000", region: us-east-1, pathStyle: true}
`)
	code, stdout, stderr := runCLI(t, "config", "check", "--config", path)
	if code != 0 || !strings.Contains(stdout, "ok, 1 sources") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, _ := runCLI(t); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
	if code, _, stderr := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "scan", "--source", "x"); code != 2 || !strings.Contains(stderr, "--config is required") {
		t.Errorf("scan without config: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(stdout, "syncer ") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}
