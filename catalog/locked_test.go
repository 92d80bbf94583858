package catalog

import (
	"errors"
	"strings"
	"testing"
)

// bbolt's flock is per open file, so a second Open in this process meets
// the lock just as another process would.
func TestOpenLockedCatalog(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = Open(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.HasPrefix(err.Error(), "catalog "+dir+": locked by another process") {
		t.Errorf("message %q does not name the catalog", err)
	}
}
