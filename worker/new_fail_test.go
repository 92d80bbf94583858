package worker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
)

// A start-up failure after the worker struct exists returns the error
// instead of panicking in the deferred Close.
func TestNewFailureClosesWithoutPanic(t *testing.T) {
	dir := t.TempDir()
	held, err := catalog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg, err := config.Parse(fmt.Appendf(nil, `
nats: {url: "nats://127.0.0.1:1"}
catalog: {path: %q}
http: {listen: "off"}
sources:
  - {id: a, provider: local, path: %q}
`, dir, t.TempDir()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(context.Background(), cfg, Options{})
	if !errors.Is(err, catalog.ErrLocked) || w != nil {
		t.Fatalf("New: %v, %v; want ErrLocked and no worker", w, err)
	}
	var nilWorker *Worker
	nilWorker.Close() // must not panic
}
