-- 004_dedup_columns: a callback's identity is the triple (internal_id,
-- event, timestamp) compared part by part, no longer the joined string
-- "internal_id:event:timestamp": joining with ':' made ("a:b", "c") and
-- ("a", "b:c") one key, so a different event was answered as a replay and
-- never stored. The three columns are TEXT with SQLite's BINARY collation,
-- which compares bytes (memcmp): strings are told apart byte for byte as
-- the listener decoded them, invalid UTF-8 and NUL bytes included. A number
-- is kept as its digits, so 1 and "1" stay one event (crm.ParseCallback).
--
-- dedup_key stays as the display and export form, no longer unique.
-- SQLite cannot drop a column's UNIQUE constraint in place, so the table is
-- rebuilt (same columns, same ids, every row kept). Rows the old key kept
-- apart differ in the joined string, hence in the triple, so building the
-- new unique index cannot fail on a store written by the listener.
--
-- The unique index also serves late linking (internal_id = ?), so the
-- separate internal_id index goes: one B-tree write fewer per callback on
-- the listener's hot path. The insert triggers are gated (below).

CREATE TABLE callbacks_new (
    id          INTEGER PRIMARY KEY,
    dedup_key   TEXT    NOT NULL,                 -- display form: internal_id:event:timestamp
    internal_id TEXT    NOT NULL,
    external_id TEXT    NOT NULL DEFAULT '',
    event       TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT '',
    timestamp   TEXT    NOT NULL,                 -- as sent
    event_time  INTEGER,                          -- timestamp read as a time; NULL when unreadable
    received_at INTEGER NOT NULL,
    skew_ms     INTEGER NOT NULL DEFAULT 0,
    raw_body    BLOB    NOT NULL,                 -- the exact bytes that were signed
    secret_idx  INTEGER NOT NULL DEFAULT 0,
    lead_id     INTEGER REFERENCES leads (id) ON DELETE SET NULL
);

INSERT INTO callbacks_new (id, dedup_key, internal_id, external_id, event, status, reason, timestamp,
        event_time, received_at, skew_ms, raw_body, secret_idx, lead_id)
    SELECT id, dedup_key, internal_id, external_id, event, status, reason, timestamp,
        event_time, received_at, skew_ms, raw_body, secret_idx, lead_id
    FROM callbacks;

-- Dropping the old table drops its indexes and triggers; the implicit
-- delete of DROP TABLE fires no trigger, so the counters stay as they are,
-- which is right: the rows are all still there.
DROP TABLE callbacks;
ALTER TABLE callbacks_new RENAME TO callbacks;

CREATE UNIQUE INDEX callbacks_dedup ON callbacks (internal_id, event, timestamp);
CREATE INDEX callbacks_lead ON callbacks (lead_id, id);

-- The listener's SaveCallbacks counts the callbacks of a batch itself,
-- once per batch (counters, throughput) in the same transaction: per-row
-- triggers ran three statements for every callback, about a third of the
-- insert's cost. Every other writer (Fill, a future import) is still
-- counted by the triggers below. SaveCallbacks turns them off for its own
-- rows by setting the 'callbacks_batch' row to 1 inside its transaction
-- and back to 0 before it commits, so no other connection ever sees 1 and
-- a crash rolls it back. The row lives in counters because SaveCallbacks
-- writes that page anyway: flipping it costs no extra page in the WAL.
INSERT INTO counters (name, n) SELECT 'callbacks_batch', 0
    WHERE NOT EXISTS (SELECT 1 FROM counters WHERE name = 'callbacks_batch');

CREATE TRIGGER callbacks_count_insert AFTER INSERT ON callbacks
WHEN (SELECT n FROM counters WHERE name = 'callbacks_batch') = 0
BEGIN
    UPDATE counters SET n = n + 1 WHERE name = 'callbacks';
    UPDATE counters SET n = n + 1 WHERE name = 'callbacks_unmatched' AND NEW.lead_id IS NULL;
END;

CREATE TRIGGER callbacks_throughput AFTER INSERT ON callbacks
WHEN (SELECT n FROM counters WHERE name = 'callbacks_batch') = 0
BEGIN
    INSERT INTO throughput (sec, callbacks) VALUES (NEW.received_at / 1000, 1)
        ON CONFLICT (sec) DO UPDATE SET callbacks = callbacks + 1;
END;

-- Deletes and late links are counted per row as before.
CREATE TRIGGER callbacks_count_delete AFTER DELETE ON callbacks
BEGIN
    UPDATE counters SET n = n - 1 WHERE name = 'callbacks';
    UPDATE counters SET n = n - 1 WHERE name = 'callbacks_unmatched' AND OLD.lead_id IS NULL;
END;

CREATE TRIGGER callbacks_count_link AFTER UPDATE OF lead_id ON callbacks
WHEN (OLD.lead_id IS NULL) <> (NEW.lead_id IS NULL)
BEGIN
    UPDATE counters SET n = n + (CASE WHEN NEW.lead_id IS NULL THEN 1 ELSE -1 END)
        WHERE name = 'callbacks_unmatched';
END;
