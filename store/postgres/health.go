package postgres

// healthState is Health's cached probe (placeholder until built).
type healthState struct{}
