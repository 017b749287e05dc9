package postgres

// stub.go holds the methods not built yet; each is removed from here as it
// is written in its own file.

import (
	"context"
	"errors"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

var errNotBuilt = errors.New("postgres: not built yet")

func (db *DB) Enqueue(_ context.Context, _ []byte, _ store.EnqueueOptions) (crm.Lead, error) {
	return crm.Lead{}, errNotBuilt
}
func (db *DB) EnqueueBatch(_ context.Context, _ [][]byte, _ store.EnqueueOptions) ([]crm.Lead, []error, error) {
	return nil, nil, errNotBuilt
}
func (db *DB) Claim(_ context.Context, _ string, _ time.Time, _ time.Duration, _ int) ([]crm.Lead, error) {
	return nil, errNotBuilt
}
func (db *DB) Record(_ context.Context, _ string, _ crm.AttemptResult) error { return errNotBuilt }
func (db *DB) Release(_ context.Context, _ string, _ []int64) error          { return errNotBuilt }
func (db *DB) NextDue(_ context.Context) (time.Time, bool, error) {
	return time.Time{}, false, errNotBuilt
}
func (db *DB) Resubmit(_ context.Context, _ string, _ []byte) (crm.Resubmission, error) {
	return crm.Resubmission{}, errNotBuilt
}
func (db *DB) SaveCallbacks(_ context.Context, _ []crm.CallbackEvent) ([]bool, error) {
	return nil, errNotBuilt
}
func (db *DB) SaveRefusal(_ context.Context, _ crm.Refusal) error { return errNotBuilt }
func (db *DB) Ping(_ context.Context) error                       { return errNotBuilt }
func (db *DB) Health(_ context.Context) (string, error)           { return "", errNotBuilt }
func (db *DB) Lead(_ context.Context, _ string) (crm.Lead, error) { return crm.Lead{}, errNotBuilt }
func (db *DB) LeadDetail(_ context.Context, _ string) (crm.LeadDetail, error) {
	return crm.LeadDetail{}, errNotBuilt
}
func (db *DB) Leads(_ context.Context, _ crm.LeadQuery) ([]crm.Lead, error) { return nil, errNotBuilt }
func (db *DB) States(_ context.Context, _ []string) (map[string]crm.State, error) {
	return nil, errNotBuilt
}
func (db *DB) Counts(_ context.Context) (crm.Counts, error) { return crm.Counts{}, errNotBuilt }
func (db *DB) Throughput(_ context.Context, _ time.Time, _ time.Duration) (crm.Throughput, error) {
	return crm.Throughput{}, errNotBuilt
}
func (db *DB) Callback(_ context.Context, _ int64) (crm.CallbackEvent, error) {
	return crm.CallbackEvent{}, errNotBuilt
}
func (db *DB) Callbacks(_ context.Context, _ crm.EventQuery) ([]crm.CallbackEvent, error) {
	return nil, errNotBuilt
}
func (db *DB) CallbacksAfter(_ context.Context, _ int64, _ int) ([]crm.CallbackEvent, error) {
	return nil, errNotBuilt
}
func (db *DB) Refusals(_ context.Context, _ crm.EventQuery) ([]crm.Refusal, error) {
	return nil, errNotBuilt
}
func (db *DB) ExportLeads(_ context.Context, _ func(crm.Lead) error) error { return errNotBuilt }
func (db *DB) ExportCallbacks(_ context.Context, _ func(crm.CallbackEvent) error) error {
	return errNotBuilt
}
func (db *DB) Watch(_ context.Context) <-chan struct{} { return nil }
func (db *DB) Prune(_ context.Context, _ time.Time) (store.PruneStats, error) {
	return store.PruneStats{}, errNotBuilt
}
func (db *DB) Backup(_ context.Context, _ string) error { return errNotBuilt }
func (db *DB) Forget(_ context.Context, _ string) (store.ForgetStats, error) {
	return store.ForgetStats{}, errNotBuilt
}
func (db *DB) Fill(_ context.Context, leads, _ int) error { return errNotBuilt }
func (db *DB) Close() error                               { return errNotBuilt }
