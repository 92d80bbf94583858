package assetsource_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/schedule"
	"github.com/imgly/syncer/worker"
)

// TestEngine runs the real CE.SDK engine with IMG.LY's remote asset source
// plugin (testdata/engine.mjs) against a running syncer over gofakes3.
func TestEngine(t *testing.T) {
	testenv, _ := filepath.Abs("../testenv")
	node := filepath.Join(testenv, "node_modules", ".bin", "node")
	if _, err := os.Stat(filepath.Join(testenv, "node_modules", "@cesdk", "node")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("testenv/node_modules lacks @cesdk/node: the test command must run npm ci in testenv")
		}
		t.Skip("testenv/node_modules lacks @cesdk/node (cd testenv && npm ci)")
	}
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "media")
	expect := map[string]string{}
	for _, f := range fixtures() {
		s3.Put(t, "media", f.key, f.body, f.ct)
		expect[f.key] = base64.StdEncoding.EncodeToString(f.body)
	}
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL = n.URL
	cfg.Catalog.Path = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	src := s3.SourceConfig("media", "media")
	src.Assets.URI, src.Assets.TTL = config.AssetURIPresign, time.Hour
	cfg.Sources = []config.Source{src}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(context.Background(), cfg, worker.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; w.Close() })
	// Run scans every source at start; this scan may find that one still
	// running, and waits for it to end.
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, err := w.Scan(ctx, "media")
		if err == nil {
			break
		}
		if !errors.Is(err, schedule.ErrBusy) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // polling the scan lock, with a deadline
	}

	ej, _ := json.Marshal(expect)
	qk, _ := json.Marshal([]string{"photos/Katze-ÄÖ.png"})
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Minute)
	defer ccancel()
	cmd := exec.CommandContext(cctx, node, "testdata/engine.mjs", "http://"+w.HTTPAddr()+"/sources/media")
	cmd.Env = append(os.Environ(), "EXPECT="+string(ej), "QUERY=katze-äö", "QUERY_KEYS="+string(qk),
		"TESTENV="+testenv)
	cmd.Dir = "."
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	var res struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
		Total int    `json:"total"`
	}
	if jerr := json.Unmarshal([]byte(last), &res); jerr != nil || err != nil || !res.OK {
		t.Fatalf("engine: %v\n%s", err, out)
	}
	if res.Total != len(expect) {
		t.Fatalf("engine saw %d assets, want %d", res.Total, len(expect))
	}
	t.Logf("engine: %s", last)
}
