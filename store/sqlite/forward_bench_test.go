package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// BenchmarkForwardClaimRecord is the store's side of the forwarding
// budget (2,000 deliveries/s): claim a batch, record it delivered.
//
//	go test -run '^$' -bench ForwardClaimRecord -benchmem ./store/sqlite/
func BenchmarkForwardClaimRecord(b *testing.B) {
	for _, batch := range []int{32, 64} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			db := storetest.OpenPath(b, filepath.Join(b.TempDir(), "fwd.db"), store.Options{})
			storetest.BenchForwardClaimRecord(b, db, batch)
		})
	}
}

// BenchmarkForwardStats is the header's forwarding line at 10,000 and at
// 1,000,000 callbacks, the cursor rewound to the start (the largest lag).
//
//	go test -run '^$' -bench ForwardStats -benchmem ./store/sqlite/
func BenchmarkForwardStats(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprint("callbacks=", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "fwd.db")
			db := storetest.OpenPath(b, path, store.Options{})
			storetest.BenchForwardStats(b, db, n, func() {
				raw, err := sql.Open("sqlite", path)
				if err != nil {
					b.Fatal(err)
				}
				defer raw.Close()
				if _, err := raw.Exec(`UPDATE forward_cursor SET last_callback_id = 0`); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
