package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// openForward opens a Store on a fresh database of the test server, and
// returns its URL.
func openForward(b *testing.B) (*postgres.DB, string) {
	u := storetest.Postgres(b)
	db, err := postgres.Open(context.Background(), u, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, u
}

// BenchmarkForwardClaimRecord is the store's side of the forwarding
// budget (2,000 deliveries/s): claim a batch, record it delivered.
//
//	go test -run '^$' -bench ForwardClaimRecord -benchmem ./store/postgres/
func BenchmarkForwardClaimRecord(b *testing.B) {
	for _, batch := range []int{32, 64} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			db, _ := openForward(b)
			storetest.BenchForwardClaimRecord(b, db, batch)
		})
	}
}

// BenchmarkForwardStats is the header's forwarding line at 10,000 and at
// 1,000,000 callbacks, the cursor rewound to the start (the largest lag).
//
//	go test -run '^$' -bench ForwardStats -benchmem ./store/postgres/
func BenchmarkForwardStats(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprint("callbacks=", n), func(b *testing.B) {
			db, u := openForward(b)
			storetest.BenchForwardStats(b, db, n, func() {
				ctx := context.Background()
				conn, err := pgx.Connect(ctx, u)
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close(ctx)
				if _, err := conn.Exec(ctx, `UPDATE forward_cursor SET last_callback_id = 0`); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
