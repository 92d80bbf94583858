// Package pgcatalog keeps syncer's catalog in PostgreSQL, shared by every
// replica: the same guarantees as the embedded bbolt catalog (a change, its
// outbox record and the source's sequence number in one transaction; a
// sequence without gaps; the guards and sequencer markers of
// catalog.Decide), checked by catalog/catalogtest.
package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// notifyChannel carries a source id whenever a commit adds outbox records.
const notifyChannel = "syncer_outbox"

// pollEvery wakes every waiter when no notification came: NOTIFY is a
// hint (a listener reconnecting misses some), the outbox is the truth.
const pollEvery = 2 * time.Second

// Options tune Open.
type Options struct {
	Log *slog.Logger // nil: slog.Default()
}

// Open connects to the database at dsn (postgres://...), applies the
// schema's migrations and returns the catalog. Errors never repeat the
// DSN's password.
func Open(ctx context.Context, dsn string, opts Options) (*catalog.Catalog, error) {
	b, err := open(ctx, dsn, opts)
	if err != nil {
		return nil, scrub(err, dsn)
	}
	return catalog.New(b), nil
}

func open(ctx context.Context, dsn string, opts Options) (*backend, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors are not promised to hide the password.
		return nil, errors.New("catalog.url: not a valid PostgreSQL URL")
	}
	fenceSession(cfg.ConnConfig.RuntimeParams)
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog: connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog: connect to PostgreSQL: %w", err)
	}
	instance, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog: %w", err)
	}
	utf8, err := serverUTF8(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	b := &backend{pool: pool, instance: instance, log: log, waiters: map[string]chan struct{}{}, cancel: cancel, utf8: utf8}
	b.done.Add(1)
	go b.listen(lctx, cfg.ConnConfig)
	return b, nil
}

// scrub removes the DSN's password from err's text, should a driver error
// ever quote it.
func scrub(err error, dsn string) error {
	u, perr := url.Parse(dsn)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}

// backend is a catalog.Backend on a connection pool.
type backend struct {
	pool     *pgxpool.Pool
	instance string
	log      *slog.Logger
	cancel   context.CancelFunc
	done     sync.WaitGroup

	mu      sync.Mutex
	waiters map[string]chan struct{}
	// utf8: the database stores text as UTF-8, so folded keys can be
	// kept (search.go); otherwise they stay NULL and queries scan.
	utf8 bool
}

func (b *backend) InstanceID() string { return b.instance }

func (b *backend) Close() error {
	b.cancel()
	b.done.Wait()
	b.pool.Close()
	return nil
}

func (b *backend) Sources(ctx context.Context) ([]string, error) {
	rows, err := b.pool.Query(ctx, "SELECT id FROM syncer_sources ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("catalog: sources: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("catalog: sources: %w", err)
	}
	return ids, nil
}

func (b *backend) Source(id string, order providers.Order, indexed bool) catalog.SourceBackend {
	return &source{b: b, id: id, order: order, indexed: indexed, group: &commitGroup{}}
}

// waiter is source id's wake-up channel.
func (b *backend) waiter(id string) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.waiters[id]
	if ch == nil {
		ch = make(chan struct{}, 1)
		b.waiters[id] = ch
	}
	return ch
}

// signal wakes source id's waiter; all ("" id) wakes every one.
func (b *backend) signal(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sid, ch := range b.waiters {
		if id != "" && sid != id {
			continue
		}
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// listen relays NOTIFY of other replicas' commits to the waiters, on a
// connection of its own, and wakes every waiter each pollEvery regardless.
func (b *backend) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer b.done.Done()
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("catalog: PostgreSQL notifications interrupted; polling meanwhile", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery):
			b.signal("")
		}
	}
}

func (b *backend) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, pollEvery)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			b.signal(n.Payload)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			b.signal("")
		default:
			return err
		}
	}
}
