package sdklog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"

	"github.com/imgly/syncer/internal/sdklog"
)

func TestAWSLevels(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := sdklog.AWS(log)
	l.Logf(logging.Warn, "Response has no supported checksum. Not validating %s", "payload")
	l.Logf(logging.Debug, "Request\nGET / HTTP/1.1\nHost: x")
	l.(logging.ContextLogger).WithContext(context.Background()).Logf(logging.Debug, "retrying request %d", 2)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"WARN", "DEBUG", "DEBUG"} {
		var v map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &v); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		if v["level"] != want || v["sdk"] != "aws" {
			t.Errorf("line %d: %v, want level %s sdk aws", i, v, want)
		}
	}

	// Below the handler's level nothing is formatted or written.
	buf.Reset()
	sdklog.AWS(slog.New(slog.NewJSONHandler(&buf, nil))).Logf(logging.Debug, "quiet")
	if buf.Len() != 0 {
		t.Errorf("debug line at info level: %s", buf.String())
	}
}
