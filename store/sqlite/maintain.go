package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// Store maintenance: Prune keeps the store bounded, Backup copies it while
// it runs, Forget erases one person. Each keeps what dedup needs: the
// leads' external_id (the outbox's key) and the callbacks' dedup columns
// stay for the life of the store, so a replayed old event is still
// recognised (docs/protocol.md §3) and an old lead is still a duplicate.

// pruneChunk is how many ids of a table one Prune transaction covers: a
// walk of that many rows by primary key, so the write lock is held for
// milliseconds and the listener's commits slip in between.
const pruneChunk = 1000

// Prune drops what only explains the past, older than before: callbacks'
// raw bodies (by arrival), the attempt rows of leads in a final state (by
// start) and refusals. It keeps every lead and every callback row, so
// counts do not move (the counters follow the deleted refusals, as the
// MaxRefusals bound does) and dedup still recognises a replayed event or
// lead. Attempts of live leads stay whole: they explain a retry in
// progress. Work is done in transactions of pruneChunk ids, so Prune runs
// beside a busy listener; on an error the chunks done stay done, and the
// stats count them. The file does not shrink (SQLite reuses the freed
// pages); Backup writes a compact copy.
func (db *DB) Prune(ctx context.Context, before time.Time) (store.PruneStats, error) {
	var st store.PruneStats
	// Refused up front, not only when a chunk has work: a prune that
	// reports nothing to do on a store that cannot be written would mislead.
	if db.readOnly {
		return st, fmt.Errorf("prune: %w: opened read-only", store.ErrReadOnly)
	}
	if err := db.replacedErr(); err != nil {
		return st, fmt.Errorf("prune: %w", err)
	}
	b := ms(before)
	for _, step := range pruneSteps() {
		var top int64
		if err := db.reader.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM `+step.table).Scan(&top); err != nil {
			return st, fmt.Errorf("prune %s: %w", step.table, mapErr(ctx, err))
		}
		n := step.stat(&st)
		for lo := int64(0); lo < top; lo += pruneChunk {
			rows, bytes, err := db.pruneChunk(ctx, step, lo, lo+pruneChunk, b)
			if err != nil {
				return st, fmt.Errorf("prune %s: %w", step.table, err)
			}
			*n += rows
			st.Bytes += bytes
		}
	}
	return st, nil
}

// pruneStep is what Prune does to one table, a chunk of ids at a time:
// count is the rows and bytes a chunk will drop, apply drops them. Both
// take (after id, up to id, before ms); stat is the count it adds to.
type pruneStep struct {
	table, count, apply string
	stat                func(*store.PruneStats) *int64
}

// pruneSteps are Prune's steps, in order.
func pruneSteps() []pruneStep {
	return []pruneStep{
		{"callbacks",
			`SELECT COUNT(*), COALESCE(SUM(length(raw_body)), 0) FROM callbacks
				WHERE id > ? AND id <= ? AND received_at < ? AND length(raw_body) > 0`,
			`UPDATE callbacks SET raw_body = x'' WHERE id > ? AND id <= ? AND received_at < ? AND length(raw_body) > 0`,
			func(st *store.PruneStats) *int64 { return &st.RawBodies }},
		{"attempts",
			`SELECT COUNT(*), COALESCE(SUM(COALESCE(length(response_body), 0) + COALESCE(length(prev_payload), 0)), 0)
				FROM attempts WHERE id > ? AND id <= ? AND started_at < ? AND ` + finalLead,
			`DELETE FROM attempts WHERE id > ? AND id <= ? AND started_at < ? AND ` + finalLead,
			func(st *store.PruneStats) *int64 { return &st.Attempts }},
		{"refusals",
			`SELECT COUNT(*), COALESCE(SUM(length(head)), 0) FROM refusals WHERE id > ? AND id <= ? AND at < ?`,
			`DELETE FROM refusals WHERE id > ? AND id <= ? AND at < ?`,
			func(st *store.PruneStats) *int64 { return &st.Refusals }},
		// A delivered forward keeps its last attempt: the timeline still
		// says when and with what answer it went through.
		{"forward_attempts",
			`SELECT COUNT(*), COALESCE(SUM(length(head)), 0) FROM forward_attempts
				WHERE id > ? AND id <= ? AND at < ? AND ` + deliveredNotLast,
			`DELETE FROM forward_attempts WHERE id > ? AND id <= ? AND at < ? AND ` + deliveredNotLast,
			func(st *store.PruneStats) *int64 { return &st.ForwardAttempts }},
	}
}

// deliveredNotLast restricts forward attempts to those of delivered
// deliveries that a later attempt of the same delivery follows.
const deliveredNotLast = `EXISTS (SELECT 1 FROM deliveries d WHERE d.id = forward_attempts.delivery_id
	AND d.state = 'delivered') AND EXISTS (SELECT 1 FROM forward_attempts b
	WHERE b.delivery_id = forward_attempts.delivery_id AND b.id > forward_attempts.id)`

// finalLead restricts attempts to those of leads in a final state.
const finalLead = `EXISTS (SELECT 1 FROM leads l WHERE l.id = attempts.lead_id
	AND l.state IN ('accepted', 'duplicate', 'validation_error', 'rejected', 'failed'))`

// pruneChunk runs one chunk of a Prune step in its own transaction: count
// what it will drop, drop it. A chunk with nothing to drop ends without a
// commit (no fsync). The rows returned are those the drop changed; the
// bytes are as counted just before, in the same transaction.
func (db *DB) pruneChunk(ctx context.Context, step pruneStep, lo, hi, before int64) (n, bytes int64, err error) {
	defer func() { db.noteFailure(err) }()
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, step.count, lo, hi, before).Scan(&n, &bytes); err != nil {
		return 0, 0, mapErr(ctx, err)
	}
	if n == 0 {
		return 0, 0, nil
	}
	// The apply statement holds the whole condition (the count is only a
	// plan and the bytes' measure), so what it drops is what is due for
	// dropping when it runs, and the rows it reports are the ones dropped.
	if n, err = execCount(ctx, tx, step.apply, lo, hi, before); err != nil {
		return 0, 0, err
	}
	if err := db.commit(ctx, tx); err != nil {
		return 0, 0, err
	}
	return n, bytes, nil
}

// Backup writes a consistent copy of the database to path while writers
// keep going (SQLite's VACUUM INTO: one read transaction, so the copy is a
// snapshot; it is also compact, without the free pages). It refuses a path
// that exists. The copy is created 0600 like the store (it holds the same
// personal data), synced to disk before Backup returns, and removed again
// if the copy fails. It needs the space of the live data.
func (db *DB) Backup(ctx context.Context, path string) (err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	// The copy reads the file at the path: after a replacement that is
	// not this store.
	if err := db.checkFile(); err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	// Created here, empty, so the mode is ours and no other process's file
	// is overwritten (O_EXCL); SQLite's VACUUM INTO accepts an empty file.
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup to %s: %w; choose a new name (a backup never overwrites)", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(abs)
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			os.Remove(abs)
		}
	}()
	// Its own read-only connection: the readers are query_only (which
	// refuses VACUUM INTO), and the writer must stay free for commits while
	// a large copy runs.
	src, err := sql.Open("sqlite", dsn(db.path, db.opt, roleBackup))
	if err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	defer src.Close()
	// An absolute path never starts with "file:", so SQLite reads it as a
	// plain file name, not a URI.
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, abs); err != nil {
		return fmt.Errorf("backup to %s: %w", path, mapErr(ctx, err))
	}
	if err := db.checkFile(); err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	if err := syncPath(abs); err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	if err := syncPath(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	return nil
}

// syncPath fsyncs a file or directory: VACUUM INTO does not sync its
// output, and a backup that a crash can lose is no backup.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	serr := f.Sync()
	return errors.Join(serr, f.Close())
}

// forgottenPayload is the payload Forget leaves: an empty object, which
// crm.CheckLead refuses (no external_id), so it cannot be a real lead's
// payload, and Resubmit knows not to send it.
const forgottenPayload = "{}"

// forgottenReason replaces a forgotten lead's reason (the CRM's text may
// quote the lead's fields).
const forgottenReason = "personal data erased"

// Forget erases one person's data from the store while keeping counts and
// dedup keys: the lead's payload becomes "{}" (phone, email and every
// other field gone), its reason and last error are replaced, its attempts
// lose their response bodies and previous payloads, and the callbacks that
// name it (linked, or unmatched with its external_id or CRM id) lose their
// raw bodies and reasons, as do refusals whose first bytes name it. The
// row, its state (failed if it was still to be sent), crm_id, times and
// the callbacks' dedup columns stay, so counts stay right and a replayed
// callback is still a replay. external_id stays too: it is the outbox's
// dedup key and the operator's own reference (the argument of forget), so
// an id chosen to be personal (an email) stays; choose ids that are not.
// The transaction runs with secure_delete on, so the old bytes are zeroed,
// and ends with a WAL checkpoint (ForgetStats.Checkpointed). An unknown id
// is ErrNotFound.
func (db *DB) Forget(ctx context.Context, externalID string) (st store.ForgetStats, err error) {
	defer func() { db.noteFailure(err) }()
	if db.readOnly {
		return st, fmt.Errorf("forget %s: %w: opened read-only", externalID, store.ErrReadOnly)
	}
	if err := db.replacedErr(); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	// The writer is one connection; pinning it keeps the pragma and the
	// transaction on the same one. Other writes wait meanwhile.
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, mapErr(ctx, err))
	}
	defer conn.Close()
	// ON, not the connection's usual FAST: freed overflow pages (a large
	// payload) are zeroed too, at the cost of writing them.
	if _, err := conn.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, mapErr(ctx, err))
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = FAST`)

	if err := db.forgetTx(ctx, conn, externalID, &st); err != nil {
		return st, fmt.Errorf("forget %s: %w", externalID, err)
	}
	if st.Checkpointed, err = checkpoint(ctx, conn, db.opt.BusyTimeout); err != nil {
		return st, fmt.Errorf("forget %s: erased, but the checkpoint failed: %w", externalID, err)
	}
	return st, nil
}

// checkpointWait bounds how long Forget's checkpoint waits for readers.
// A TRUNCATE checkpoint holds the write lock while it waits, so a serve
// sharing the file would stall its commits for up to the busy timeout;
// better an incomplete checkpoint (reported) than a stalled listener.
const checkpointWait = 250 * time.Millisecond

// checkpoint copies the WAL into the database file and truncates it,
// waiting at most checkpointWait for readers; done is false when readers
// kept it from finishing.
func checkpoint(ctx context.Context, conn *sql.Conn, busyTimeout time.Duration) (done bool, err error) {
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, checkpointWait.Milliseconds())); err != nil {
		return false, mapErr(ctx, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeout.Milliseconds()))
	var busy, frames, copied int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied); err != nil {
		return false, mapErr(ctx, err)
	}
	return busy == 0, nil
}

// forgetTx is Forget's transaction on conn.
func (db *DB) forgetTx(ctx context.Context, conn *sql.Conn, externalID string, st *store.ForgetStats) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(ctx, err)
	}
	defer tx.Rollback()
	var (
		id             int64
		state, crmID   string
		payload        []byte
		nowMS          = ms(db.now())
		exec           = func(q string, args ...any) (int64, error) { return execCount(ctx, tx, q, args...) }
		liveStatesList = `'queued', 'retry_wait', 'in_flight', 'held'` // still to be sent: withdrawn
	)
	var needles []string
	for try := 0; ; try++ {
		if try == maxGuardRetries {
			return fmt.Errorf("%w: the lead kept changing while it was being erased; try again", store.ErrBusy)
		}
		err = tx.QueryRowContext(ctx, `SELECT id, state, crm_id, payload FROM leads WHERE external_id = ?`, externalID).
			Scan(&id, &state, &crmID, &payload)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return mapErr(ctx, err)
		}
		// The identifiers other rows may quote, as of now and before each
		// edit, read before the attempts lose their previous payloads.
		prev, err := queryAll(ctx, tx, scanBytes, `SELECT prev_payload FROM attempts WHERE lead_id = ? AND prev_payload IS NOT NULL`, id)
		if err != nil {
			return err
		}
		needles = personalStrings(externalID, append(prev, payload)...)
		st.Withdrawn = !crm.State(state).Final()
		db.hookAfterRead(ctx, "forget", tx)
		// The WHERE re-checks what the rest is computed from: the state
		// (Withdrawn), the CRM id (which callbacks to wipe) and the payload
		// (the identifiers; an edit also adds the previous payloads). A
		// lead changed since the read matches no row and is read again.
		n, err := exec(`UPDATE leads SET payload = ?, reason = ?, last_error = '',
				state = CASE WHEN state IN (`+liveStatesList+`) THEN 'failed' ELSE state END,
				next_attempt_at = CASE WHEN state IN (`+liveStatesList+`) THEN NULL ELSE next_attempt_at END,
				lease_owner = '', lease_expires_at = NULL, hold = '', updated_at = ?
			WHERE id = ? AND state = ? AND crm_id = ? AND payload = ?`,
			[]byte(forgottenPayload), forgottenReason, nowMS, id, state, crmID, payload)
		if err != nil {
			return err
		}
		if n == 1 {
			break
		}
	}
	if st.Attempts, err = exec(`UPDATE attempts SET response_body = NULL, prev_payload = NULL
		WHERE lead_id = ? AND (response_body IS NOT NULL OR prev_payload IS NOT NULL)`, id); err != nil {
		return err
	}
	const wipe = `UPDATE callbacks SET raw_body = x'', reason = '' WHERE `
	const dirty = ` AND (length(raw_body) > 0 OR reason <> '')`
	n, err := exec(wipe+`lead_id = ?`+dirty, id)
	if err != nil {
		return err
	}
	st.Callbacks += n
	if n, err = exec(wipe+`lead_id IS NULL AND external_id = ?`+dirty, externalID); err != nil {
		return err
	}
	st.Callbacks += n
	if crmID != "" {
		if n, err = exec(wipe+`lead_id IS NULL AND internal_id = ?`+dirty, crmID); err != nil {
			return err
		}
		st.Callbacks += n
	}
	// The app's answers to the lead's forwarded callbacks may echo them;
	// its deliveries not yet made would send an erased body, so they end
	// failed (a replay can still send what is left).
	const leadDeliveries = `SELECT d.id FROM deliveries d JOIN callbacks c ON c.id = d.callback_id
		WHERE c.lead_id = ?1 OR (c.lead_id IS NULL AND (c.external_id = ?2 OR (?3 <> '' AND c.internal_id = ?3)))`
	if _, err := exec(`UPDATE forward_attempts SET head = x'' WHERE length(head) > 0
		AND delivery_id IN (`+leadDeliveries+`)`, id, externalID, crmID); err != nil {
		return err
	}
	if _, err := exec(`UPDATE deliveries SET state = 'failed', last_error = ?4, lease_owner = '', lease_until = NULL,
			updated_at = ?5
		WHERE state IN ('pending', 'in_flight') AND id IN (`+leadDeliveries+`)`,
		id, externalID, crmID, forgottenReason, nowMS); err != nil {
		return err
	}
	// Refusals keep a body's first bytes; the table is bounded, so a scan
	// for those identifiers is cheap.
	if len(needles) > 0 {
		q := `UPDATE refusals SET head = x'' WHERE length(head) > 0 AND (` +
			strings.TrimSuffix(strings.Repeat(`instr(head, CAST(? AS BLOB)) > 0 OR `, len(needles)), " OR ") + `)`
		args := make([]any, len(needles))
		for i, s := range needles {
			args[i] = s
		}
		if st.Refusals, err = exec(q, args...); err != nil {
			return err
		}
	}
	return db.commit(ctx, tx)
}

// personalStrings are the lead's identifiers that other rows may quote:
// its external_id and each payload's phone and email, when present, once
// each.
func personalStrings(externalID string, payloads ...[]byte) []string {
	out := []string{externalID}
	seen := map[string]bool{externalID: true}
	for _, p := range payloads {
		var f map[string]json.RawMessage
		if json.Unmarshal(p, &f) != nil {
			continue
		}
		for _, k := range []string{"phone", "email"} {
			var s string
			if json.Unmarshal(f[k], &s) == nil && s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

func scanBytes(s scanner) ([]byte, error) {
	var b []byte
	err := s.Scan(&b)
	return b, err
}

// execCount runs a statement in tx and returns the rows it changed.
func execCount(ctx context.Context, tx *sql.Tx, q string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	n, err := res.RowsAffected()
	return n, mapErr(ctx, err)
}
