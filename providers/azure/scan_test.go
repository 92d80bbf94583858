package azure_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/kinds"
	"github.com/imgly/syncer/schedule"
)

// A SAS that may read but not list fails the scan as permission_denied:
// the source, configured and opened through its kind, names the kind in its
// scan status and does not rest (only throttling does).
func TestScanWithoutListPermissionIsNamed(t *testing.T) {
	endpoint := azuriteBlob(t)
	admin, name := newContainer(t, endpoint)
	sasURL, err := admin.ServiceClient().NewContainerClient(name).GetSASURL(sas.ContainerPermissions{Read: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := config.Source{ID: "d", Provider: "azure", Container: name,
		Azure: config.Azure{AccountURL: endpoint, SASToken: sasURL[strings.IndexByte(sasURL, '?'):]}}
	_, kind, err := src.Configure(kinds.All(), "sources[0]")
	if err != nil {
		t.Fatal(err)
	}
	p, err := kind.Open(context.Background(), providers.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := schedule.NewScheduler([]schedule.Job{{Spec: "@every 1h", Target: schedule.Target{
		ID: "d", Provider: p, Catalog: c.Source("d", p.Order()),
	}}}, schedule.Options{SpillDir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Scan(context.Background(), "d"); !errors.Is(err, providers.ErrPermission) {
		t.Fatalf("scan: %v, want permission denied", err)
	}
	st, _ := s.Status("d")
	if st.LastFailure == nil || st.LastFailure.Kind != providers.KindPermission || !st.RestUntil.IsZero() {
		t.Fatalf("status: %+v, want permission_denied and no rest", st)
	}
	if strings.Contains(st.LastFailure.Err.Error(), "sig=") {
		t.Errorf("the error shows the SAS: %v", st.LastFailure.Err)
	}
}
