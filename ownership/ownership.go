// Package ownership decides which replica owns which source when several
// syncer processes share one PostgreSQL catalog. Each replica heartbeats,
// acquires leases on up to its share of the sources (ceil(sources/replicas)),
// renews them and releases the ones over its share, so sources spread
// evenly and move when replicas join or leave. The lease table and its
// fencing token (catalog/pgcatalog) make a double owner impossible: a lease
// is taken only once expired or released by the database's clock, and every
// commit, outbox read and ack of the source checks the token.
package ownership

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/imgly/syncer/catalog/pgcatalog"
)

// Defaults: a dead owner's sources move within TTL plus one renew period.
const (
	DefaultTTL   = 6 * time.Second
	DefaultRenew = 2 * time.Second
)

// Leases is the lease table (pgcatalog.Leases).
type Leases interface {
	Acquire(ctx context.Context, source, owner string, ttl time.Duration) (pgcatalog.Lease, error)
	Release(ctx context.Context, lease pgcatalog.Lease) error
	List(ctx context.Context) ([]pgcatalog.LeaseRow, error)
}

// Options configure a Manager.
type Options struct {
	Replica string
	Sources []string
	TTL     time.Duration // 0: DefaultTTL
	Renew   time.Duration // 0: DefaultRenew
	Log     *slog.Logger
	// Run does a won source's work until ctx is cancelled, and returns
	// once that work has stopped (drained or abandoned). claim says, by
	// this process's clock, whether the lease is still surely held.
	Run func(ctx context.Context, source string, claim *Claim)
}

// Manager runs a replica's side of the ownership.
type Manager struct {
	l    Leases
	opts Options

	mu     sync.Mutex
	claims map[string]*Claim
	wg     sync.WaitGroup
	beat   *pgcatalog.Lease // the last heartbeat, released at the end
}

// New returns a manager over l.
func New(l Leases, opts Options) *Manager {
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Renew == 0 {
		opts.Renew = DefaultRenew
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Manager{l: l, opts: opts, claims: map[string]*Claim{}}
}

// Run acquires, renews and rebalances until ctx is cancelled; then it stops
// the owned sources' work and releases their leases, so that the other
// replicas take them at once rather than after the TTL.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.Renew)
	defer t.Stop()
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
			m.mu.Lock()
			for _, c := range m.claims {
				c.stop()
			}
			m.mu.Unlock()
			m.wg.Wait()
			// The heartbeat goes too: the others' share grows at
			// once, so they take the released sources now.
			if m.beat != nil {
				Release(ctx, m.l, *m.beat)
			}
			return
		case <-t.C:
		}
	}
}

// Owned returns the sources this replica holds now and their claims.
func (m *Manager) Owned() map[string]*Claim {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*Claim, len(m.claims))
	for id, c := range m.claims {
		out[id] = c
	}
	return out
}

// call bounds one database call by the renew period: a hung connection
// must not stall the renewal of the other leases.
func (m *Manager) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.opts.Renew)
}

func (m *Manager) tick(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	cctx, cancel := m.call(ctx)
	beat, err := m.l.Acquire(cctx, pgcatalog.ReplicaPrefix+m.opts.Replica, m.opts.Replica, m.opts.TTL)
	cancel()
	if err != nil {
		m.opts.Log.Warn("ownership: heartbeat failed", "replica", m.opts.Replica, "err", err)
	} else {
		m.beat = &beat
	}
	m.renew(ctx)
	cctx, cancel = m.call(ctx)
	rows, err := m.l.List(cctx)
	cancel()
	if err != nil {
		m.opts.Log.Warn("ownership: reading the lease table failed", "err", err)
		return
	}
	m.balance(ctx, rows)
}

// renew extends every held lease; a lease another replica now holds, or one
// whose local deadline passed without a renewal, stops its source's work.
func (m *Manager) renew(ctx context.Context) {
	for id, c := range m.Owned() {
		if c.releasing() {
			continue
		}
		start := time.Now()
		cctx, cancel := m.call(ctx)
		l, err := m.l.Acquire(cctx, id, m.opts.Replica, m.opts.TTL)
		cancel()
		switch {
		case err == nil && l.Token == c.Lease.Token:
			c.extend(start.Add(m.opts.TTL), l.Expires)
		case err == nil:
			// Expired and re-acquired under a new token: the old
			// token's work is fenced, so it restarts under the new one.
			m.opts.Log.Warn("ownership: lease lapsed before its renewal; restarting the source", "source", id)
			c.stop()
			Release(ctx, m.l, l)
		case errors.Is(err, pgcatalog.ErrLeaseHeld):
			m.opts.Log.Warn("ownership: lease lost to another replica", "source", id)
			c.stop()
		case !c.Valid():
			m.opts.Log.Warn("ownership: lease not renewed in time; stopping the source", "source", id, "err", err)
			c.stop()
		default:
			m.opts.Log.Warn("ownership: renewing a lease failed; retrying", "source", id, "err", err)
		}
	}
}

// Release gives l up, best effort: if it fails, l expires by itself.
func Release(ctx context.Context, l Leases, lease pgcatalog.Lease) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	l.Release(rctx, lease) //nolint:errcheck // the lease expires anyway
}

// Target is a replica's share: ceil(sources/replicas).
func Target(sources, replicas int) int {
	if replicas < 1 {
		replicas = 1
	}
	return (sources + replicas - 1) / replicas
}

func (m *Manager) balance(ctx context.Context, rows []pgcatalog.LeaseRow) {
	replicas, held := 0, map[string]bool{}
	self := false
	for _, r := range rows {
		if !r.Live {
			continue
		}
		if r.Source == pgcatalog.ReplicaPrefix+m.opts.Replica {
			self = true
		}
		if len(r.Source) > len(pgcatalog.ReplicaPrefix) && r.Source[:len(pgcatalog.ReplicaPrefix)] == pgcatalog.ReplicaPrefix {
			replicas++
		} else if r.Owner != m.opts.Replica {
			held[r.Source] = true
		}
	}
	if !self {
		replicas++ // this replica, even while its heartbeat fails
	}
	target := Target(len(m.opts.Sources), replicas)
	prefs := Preference(m.opts.Replica, m.opts.Sources)
	owned := m.Owned()
	n := 0
	for _, id := range prefs {
		if c, ok := owned[id]; ok && !c.releasing() {
			n++
		}
	}
	// Over the share: release the least preferred first. Its work stops
	// before the lease is released, so no other replica starts it early.
	for i := len(prefs) - 1; i >= 0 && n > target; i-- {
		if c, ok := owned[prefs[i]]; ok && !c.releasing() {
			m.opts.Log.Info("ownership: releasing a source over this replica's share", "source", prefs[i], "target", target)
			c.stop()
			n--
		}
	}
	for _, id := range prefs {
		if n >= target || ctx.Err() != nil {
			break
		}
		if _, ok := owned[id]; ok || held[id] {
			continue
		}
		start := time.Now()
		cctx, cancel := m.call(ctx)
		l, err := m.l.Acquire(cctx, id, m.opts.Replica, m.opts.TTL)
		cancel()
		if err != nil {
			if !errors.Is(err, pgcatalog.ErrLeaseHeld) {
				m.opts.Log.Warn("ownership: acquiring a lease failed", "source", id, "err", err)
			}
			continue
		}
		m.start(ctx, l, start.Add(m.opts.TTL))
		n++
	}
}

func (m *Manager) start(ctx context.Context, l pgcatalog.Lease, deadline time.Time) {
	c := newClaim(l, deadline)
	wctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	m.mu.Lock()
	m.claims[l.Source] = c
	m.mu.Unlock()
	m.opts.Log.Info("ownership: source acquired", "source", l.Source, "token", l.Token, "expires", l.Expires)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.opts.Run(wctx, l.Source, c)
		cancel()
		m.mu.Lock()
		if m.claims[l.Source] == c {
			delete(m.claims, l.Source)
		}
		m.mu.Unlock()
		// Released only once the work has stopped; conditional on the
		// token, so a lease lost meanwhile is left alone.
		Release(ctx, m.l, l)
		m.opts.Log.Info("ownership: source stopped", "source", l.Source, "token", l.Token)
	}()
}

// Preference orders sources for replica by rendezvous hashing: replicas
// prefer different sources, so they rarely race for the same lease, and a
// source's preferred replica stays the same while replicas come and go.
func Preference(replica string, sources []string) []string {
	score := func(id string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(replica))
		return h.Sum64()
	}
	out := slices.Clone(sources)
	slices.SortFunc(out, func(a, b string) int {
		sa, sb := score(a), score(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	return out
}
