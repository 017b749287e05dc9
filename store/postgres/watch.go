package postgres

// watcher is the LISTEN/NOTIFY change signal (placeholder until built).
type watcher struct{}
