package pgcatalog_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/catalog/catalogtest"
	"github.com/imgly/syncer/catalog/pgcatalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

func open(t testing.TB, dsn string) *catalog.Catalog {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, err := pgcatalog.Open(ctx, dsn, pgcatalog.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return c
}

func TestConformance(t *testing.T) {
	pg := testkit.StartPostgres(t)
	catalogtest.Run(t, func(t *testing.T) *catalog.Catalog { return open(t, pg.NewDatabase(t)) })
}

// Replicas starting at once on an empty database each apply the schema or
// find it applied, and agree on one instance id.
func TestConcurrentStarts(t *testing.T) {
	pg := testkit.StartPostgres(t)
	dsn := pg.NewDatabase(t)
	const n = 6
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := open(t, dsn)
			defer c.Close()
			ids[i] = c.InstanceID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("instance ids %v", ids)
		}
	}
	// And a restart finds everything in place.
	c := open(t, dsn)
	defer c.Close()
	if c.InstanceID() != ids[0] {
		t.Fatalf("restart: instance %s, want %s", c.InstanceID(), ids[0])
	}
}

// The password never appears in an error: wrong password, unreachable
// host, unparsable URL.
func TestErrorsHidePassword(t *testing.T) {
	pg := testkit.StartPostgres(t)
	const secret = "s3cr3t-Pa55"
	u, err := url.Parse(pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("nobody", secret)
	bad := []string{
		u.String(),
		"postgres://user:" + secret + "@127.0.0.1:1/db?connect_timeout=2",
		"postgres://user:" + secret + "@[::1:bad/db",
		"host=127.0.0.1 port=notaport password=" + secret,
	}
	for _, dsn := range bad {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := pgcatalog.Open(ctx, dsn, pgcatalog.Options{})
		cancel()
		if err == nil {
			t.Errorf("open with a bad DSN succeeded")
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// A commit by another replica wakes this one's waiter (NOTIFY, else the
// poll).
func TestWaitAcrossReplicas(t *testing.T) {
	pg := testkit.StartPostgres(t)
	dsn := pg.NewDatabase(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	w := a.Source("s", 0).Wait()
	if _, err := b.Source("s", 0).Commit(t.Context(), []catalog.Mutation{{Object: providers.Object{Key: "k", ETag: "1"}, Origin: catalog.Scan}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w:
	case <-time.After(20 * time.Second):
		t.Fatal("the other replica's commit did not wake the waiter")
	}
	if chs, err := a.Source("s", 0).Outbox(t.Context(), 1, 10); err != nil || len(chs) != 1 {
		t.Fatalf("outbox seen by the other replica: %v %v", chs, err)
	}
}
