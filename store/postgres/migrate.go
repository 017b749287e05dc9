package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadwatch/leadwatch/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the pg_advisory_lock key that serializes migrations:
// instances starting at once on a fresh database migrate it once, the
// others wait and then find nothing to do. ("lw" "migr" in ASCII.)
const migrationLock int64 = 0x6c77_6d69_6772

// SchemaVersion is the schema version this build migrates databases to.
func SchemaVersion() int {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate applies the embedded migrations not yet applied, each in its own
// transaction, on one connection holding migrationLock, so concurrent
// Opens of one database apply each migration once. A read-only handle
// only checks the version.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer conn.Release()
	if db.readOnly {
		v, err := version(ctx, conn)
		if err != nil {
			return mapErr(ctx, err)
		}
		return store.CheckVersion(v, len(ms), true)
	}
	// Waiting for another instance's migration is not "busy": lift the
	// lock timeout for this session while it waits.
	if _, err := conn.Exec(ctx, `SET lock_timeout = 0`); err != nil {
		return mapErr(ctx, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migration lock: %w", mapErr(ctx, err))
	}
	defer func() {
		_, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
		_, rerr := conn.Exec(context.WithoutCancel(ctx), `RESET lock_timeout`)
		if uerr != nil || rerr != nil {
			// A session lock must not go back to the pool with the
			// connection: closing the connection releases it.
			_ = conn.Hijack().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at BIGINT  NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrations table: %w", mapErr(ctx, err))
	}
	v, err := version(ctx, conn)
	if err != nil {
		return mapErr(ctx, err)
	}
	if err := store.CheckVersion(v, len(ms), false); err != nil {
		return err
	}
	for _, m := range ms[v:] {
		if err := db.apply(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

// apply runs one migration and records it, in one transaction.
func (db *DB) apply(ctx context.Context, conn *pgxpool.Conn, m store.Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, mapErr(ctx, err))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.Version, m.Name, db.now().UnixMilli()); err != nil {
		return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, mapErr(ctx, err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, mapErr(ctx, err))
	}
	db.log.Info("store migrated", "db", db.location, "version", m.Version, "name", m.Name)
	return nil
}

// version reads the applied schema version; 0 for a database without the
// migrations table.
func version(ctx context.Context, conn *pgxpool.Conn) (int, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
