package pgcatalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/catalog/pgcatalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

func put(key, etag string) []catalog.Mutation {
	return []catalog.Mutation{{Object: providers.Object{Key: key, ETag: etag}, Origin: catalog.Scan}}
}

// A replica whose lease was taken over can no longer commit or ack for the
// source, even though it still holds the old token; the new owner can.
func TestFencing(t *testing.T) {
	ctx := t.Context()
	dsn := testkit.StartPostgres(t).NewDatabase(t)
	ca, cb := open(t, dsn), open(t, dsn)
	defer ca.Close()
	defer cb.Close()
	la, err := pgcatalog.LeasesOf(ca)
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := pgcatalog.LeasesOf(cb)
	a, err := la.Acquire(ctx, "s", "replica-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	srcA := ca.Source("s", providers.ByteOrder).Fenced(a.Fence())
	if _, err := srcA.Commit(ctx, put("k", "1")); err != nil {
		t.Fatalf("owner's commit: %v", err)
	}
	if _, err := lb.Acquire(ctx, "s", "replica-b", time.Minute); !errors.Is(err, pgcatalog.ErrLeaseHeld) {
		t.Fatalf("acquire of a held lease: %v, want ErrLeaseHeld", err)
	}
	if again, err := la.Acquire(ctx, "s", "replica-a", time.Minute); err != nil || again.Token != a.Token {
		t.Fatalf("renewal: %+v %v, want token %d", again, err, a.Token)
	}
	// Replica a stalls past its lease (the test moves the lease's expiry
	// instead of waiting it out), and b takes the source over.
	expire(t, dsn, "s")
	b, err := lb.Acquire(ctx, "s", "replica-b", time.Minute)
	if err != nil || b.Token <= a.Token {
		t.Fatalf("takeover: %+v %v", b, err)
	}
	if _, err := srcA.Commit(ctx, put("k", "2")); !errors.Is(err, catalog.ErrFenced) {
		t.Fatalf("stale owner's commit: %v, want ErrFenced", err)
	}
	if err := srcA.Ack(ctx, 1); !errors.Is(err, catalog.ErrFenced) {
		t.Fatalf("stale owner's ack: %v, want ErrFenced", err)
	}
	if _, err := la.Acquire(ctx, "s", "replica-a", time.Minute); !errors.Is(err, pgcatalog.ErrLeaseHeld) {
		t.Fatalf("stale owner re-acquires: %v, want ErrLeaseHeld", err)
	}
	srcB := cb.Source("s", providers.ByteOrder).Indexed(true).Fenced(b.Fence())
	chs, err := srcB.Commit(ctx, put("k", "3"))
	if err != nil || len(chs) != 1 || chs[0].Seq != 2 {
		t.Fatalf("new owner's commit: %v %v", chs, err)
	}
	e, _, _ := cb.Source("s", providers.ByteOrder).Get(ctx, "k")
	if e.ETag != "3" {
		t.Fatalf("entry %+v: the stale owner's write landed", e)
	}
	// An expired lease fences its holder even before anyone takes over.
	expire(t, dsn, "s")
	if _, err := srcB.Commit(ctx, put("k", "4")); !errors.Is(err, catalog.ErrFenced) {
		t.Fatalf("commit on an expired lease: %v, want ErrFenced", err)
	}
	if err := lb.Release(ctx, b); err != nil {
		t.Fatal(err)
	}
}

func expire(t *testing.T, dsn, source string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "UPDATE syncer_leases SET expires_at = now() - interval '1 second' WHERE source = $1", source); err != nil {
		t.Fatal(err)
	}
}

// A fenced source's outbox read checks the lease in its transaction: a
// replica that lost the lease gets no batch to publish.
func TestFencedOutbox(t *testing.T) {
	ctx := t.Context()
	dsn := testkit.StartPostgres(t).NewDatabase(t)
	c := open(t, dsn)
	defer c.Close()
	l, _ := pgcatalog.LeasesOf(c)
	a, err := l.Acquire(ctx, "s", "replica-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	src := c.Source("s", providers.ByteOrder).Fenced(a.Fence())
	if _, err := src.Commit(ctx, put("k", "1")); err != nil {
		t.Fatal(err)
	}
	if chs, err := src.Outbox(ctx, 1, 10); err != nil || len(chs) != 1 {
		t.Fatalf("owner's outbox: %v %v", chs, err)
	}
	expire(t, dsn, "s")
	if _, err := src.Outbox(ctx, 1, 10); !errors.Is(err, catalog.ErrFenced) {
		t.Fatalf("stale owner's outbox read: %v, want ErrFenced", err)
	}
	rows, err := l.List(ctx)
	if err != nil || len(rows) != 1 || rows[0].Live || rows[0].Owner != "replica-a" {
		t.Fatalf("lease rows %+v %v: want s's, expired", rows, err)
	}
}
