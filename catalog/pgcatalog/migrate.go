package pgcatalog

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that serializes migrations of
// replicas starting at once ("syncer" in ASCII).
const migrationLock = 0x73796e636572

// migrate applies the embedded migrations not applied yet, in name order,
// each with its record in syncer_migrations, all in one transaction under
// an advisory lock: replicas starting at once apply each migration exactly
// once, and the others wait and find nothing to do. It returns the
// catalog's instance id, created on the first start.
func migrate(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return "", err
	}
	slices.Sort(names)
	var instance string
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS syncer_migrations (
			version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT version FROM syncer_migrations")
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, name := range names {
			v, err := versionOf(name)
			if err != nil {
				return err
			}
			if slices.Contains(applied, v) {
				continue
			}
			sql, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			// The simple protocol runs a file of several statements.
			if err := tx.Conn().PgConn().Exec(ctx, string(sql)).Close(); err != nil {
				return fmt.Errorf("migration %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO syncer_migrations (version, name) VALUES ($1, $2)", v, name); err != nil {
				return err
			}
		}
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO syncer_meta (k, v) VALUES ('instance', $1) ON CONFLICT (k) DO NOTHING", hex.EncodeToString(b[:])); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT v FROM syncer_meta WHERE k = 'instance'").Scan(&instance)
	})
	if err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	return instance, nil
}

// versionOf reads the number a migration's name starts with.
func versionOf(name string) (int32, error) {
	base := strings.TrimPrefix(name, "migrations/")
	num, _, _ := strings.Cut(base, "_")
	v, err := strconv.ParseInt(num, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("migration %s: name must start with its number", name)
	}
	return int32(v), nil
}
