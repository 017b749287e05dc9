package main

import (
	"context"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
)

// postgresOps is opsBackend on a fresh PostgreSQL database, named by a URL
// with a password (the test skips without LEADWATCH_TEST_POSTGRES).
func postgresOps(t *testing.T, now func() time.Time) (store.Store, string) {
	t.Helper()
	dsn := pgURL(t)
	db, err := postgres.Open(context.Background(), dsn, store.Options{Now: now})
	if err != nil {
		t.Fatalf("open %s: %v", store.RedactLocation(dsn), err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dsn
}

// The operator commands' main paths, on a postgres:// store.

func TestPostgresRetryNowCommand(t *testing.T) { testRetryNow(t, postgresOps) }

func TestPostgresHoldReleaseCancelCommands(t *testing.T) { testHoldReleaseCancel(t, postgresOps) }

func TestPostgresPauseResumeCommands(t *testing.T) { testPauseResume(t, postgresOps) }

func TestPostgresResubmitBulk(t *testing.T) { testResubmitBulk(t, postgresOps) }

func TestPostgresReportCommand(t *testing.T) { testReport(t, postgresOps) }

func TestPostgresStatusExplainsUnknown(t *testing.T) { testStatusExplainsUnknown(t, postgresOps) }
