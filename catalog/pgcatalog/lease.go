package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
)

// ErrLeaseHeld: another replica holds the source's lease, unexpired.
var ErrLeaseHeld = errors.New("lease held by another replica")

// Lease is a replica's ownership of one source until Expires (by the
// database's clock). Token fences its commits (catalog.Fence).
type Lease struct {
	Source  string
	Owner   string
	Token   uint64
	Expires time.Time
}

// Fence is what the lease's holder commits under.
func (l Lease) Fence() catalog.Fence { return catalog.Fence{Owner: l.Owner, Token: l.Token} }

// Leases hands out the sources' leases of a PostgreSQL catalog.
type Leases struct{ b *backend }

// LeasesOf returns the lease table of c, which must be a PostgreSQL
// catalog (the embedded one has one process per file: its file lock is
// its lease).
func LeasesOf(c *catalog.Catalog) (*Leases, error) {
	b, ok := catalog.BackendOf(c).(*backend)
	if !ok {
		return nil, errors.New("catalog: leases need the PostgreSQL catalog (catalog.url)")
	}
	return &Leases{b: b}, nil
}

// Acquire takes or renews the lease of source for owner, for ttl. It fails
// with ErrLeaseHeld while another owner's lease is unexpired. Renewing an
// unexpired lease keeps its token; any other acquisition gets a new one,
// so that whatever a previous holder still tries to commit is refused.
func (l *Leases) Acquire(ctx context.Context, source, owner string, ttl time.Duration) (Lease, error) {
	lease := Lease{Source: source, Owner: owner}
	var token int64
	err := l.b.pool.QueryRow(ctx, `INSERT INTO syncer_leases AS l (source, owner, token, expires_at)
		VALUES ($1, $2, 1, now() + $3 * interval '1 microsecond')
		ON CONFLICT (source) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at,
			token = CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > now() THEN l.token ELSE l.token + 1 END
		WHERE l.owner = EXCLUDED.owner OR l.expires_at <= now()
		RETURNING token, expires_at`, source, owner, ttl.Microseconds()).Scan(&token, &lease.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, fmt.Errorf("catalog: lease of %s: %w", source, ErrLeaseHeld)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("catalog: lease of %s: %w", source, err)
	}
	lease.Token = uint64(token)
	return lease, nil
}

// Release gives the lease up, if owner still holds it, so that another
// replica need not wait for it to expire.
func (l *Leases) Release(ctx context.Context, lease Lease) error {
	_, err := l.b.pool.Exec(ctx, "UPDATE syncer_leases SET expires_at = now() WHERE source = $1 AND owner = $2 AND token = $3",
		lease.Source, lease.Owner, int64(lease.Token))
	if err != nil {
		return fmt.Errorf("catalog: release lease of %s: %w", lease.Source, err)
	}
	return nil
}

// checkFence fails the transaction unless f is the source's current,
// unexpired lease. The row is locked FOR SHARE: a takeover's UPDATE waits
// for this transaction, so no commit lands after the lease moved.
func (s *source) checkFence(ctx context.Context, tx pgx.Tx) error {
	if s.fence == nil {
		return nil
	}
	var ok bool
	err := tx.QueryRow(ctx, `SELECT owner = $2 AND token = $3 AND expires_at > now()
		FROM syncer_leases WHERE source = $1 FOR SHARE`, s.id, s.fence.Owner, int64(s.fence.Token)).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !ok {
		return fmt.Errorf("%w (owner %s, token %d)", catalog.ErrFenced, s.fence.Owner, s.fence.Token)
	}
	return err
}

// Fenced implements catalog.Fencer.
func (s *source) Fenced(f catalog.Fence) catalog.SourceBackend {
	c := *s
	// Its own group: a group's transaction checks one fence.
	c.fence, c.group = &f, &commitGroup{}
	return &c
}

// querier is what a read needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// fencedOutbox reads the outbox in a transaction that first checks the
// fence: a replica that lost the lease gets ErrFenced instead of a batch
// to publish.
func (s *source) fencedOutbox(ctx context.Context, from uint64, limit int) ([]catalog.Change, error) {
	var changes []catalog.Change
	err := pgx.BeginFunc(ctx, s.b.pool, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return fmt.Errorf("catalog: outbox %s: %w", s.id, err)
		}
		var err error
		changes, err = s.outbox(ctx, tx, from, limit)
		return err
	})
	return changes, err
}

// ReplicaPrefix starts the lease-table rows that are replicas' heartbeats
// rather than sources' leases. Source ids cannot contain ':' (config), so
// the two never collide.
const ReplicaPrefix = "replica:"

// LeaseRow is one row of the lease table as List saw it.
type LeaseRow struct {
	Lease
	// Live: unexpired by the database's clock when read.
	Live bool
}

// List returns every lease (and replica heartbeat) row.
func (l *Leases) List(ctx context.Context) ([]LeaseRow, error) {
	rows, err := l.b.pool.Query(ctx, "SELECT source, owner, token, expires_at, expires_at > now() FROM syncer_leases ORDER BY source")
	if err != nil {
		return nil, fmt.Errorf("catalog: list leases: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LeaseRow, error) {
		var r LeaseRow
		var token int64
		err := row.Scan(&r.Source, &r.Owner, &token, &r.Expires, &r.Live)
		r.Token = uint64(token)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list leases: %w", err)
	}
	return out, nil
}

// fenceSession bounds how long the server keeps a transaction whose client
// went silent (a replica paused or cut off mid-commit): its FOR SHARE lock
// on the lease row would otherwise hold a takeover's UPDATE, and so the
// failover, for as long as the dead TCP connection lingers. 3 s is half
// the default lease TTL; a catalog.url that sets the parameter keeps its.
func fenceSession(params map[string]string) {
	if _, ok := params["idle_in_transaction_session_timeout"]; !ok {
		params["idle_in_transaction_session_timeout"] = "3s"
	}
}
