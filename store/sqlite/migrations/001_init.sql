-- 001_init: the outbox, its history, callbacks, refusals, and the counters
-- that keep the dashboard's headline numbers O(1).
--
-- Conventions (kept portable to PostgreSQL): times are unix milliseconds in
-- INTEGER columns; durations are integer milliseconds (microseconds where
-- named _us); text fields that may be absent are '' rather than NULL, so
-- scans stay simple; NULL means "no time" for the optional times.

CREATE TABLE leads (
    id               INTEGER PRIMARY KEY,
    external_id      TEXT    NOT NULL UNIQUE,
    payload          BLOB    NOT NULL,            -- the exact bytes sent and signed
    idempotency_key  TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'in_flight', 'retry_wait',
                         'accepted', 'duplicate', 'validation_error', 'rejected', 'failed')),
    crm_id           TEXT    NOT NULL DEFAULT '',
    crm_status       TEXT    NOT NULL DEFAULT '',
    crm_status_at    INTEGER,                     -- event time of the status kept, so a reordered older callback does not overwrite a newer one
    reason           TEXT    NOT NULL DEFAULT '',
    phone_invalid    INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- When the lead is next due: queued leads since enqueue, retry_wait leads
    -- at their retry time, in_flight leads at their lease expiry (a mirror of
    -- lease_expires_at, so that one index serves Claim and NextDue for all
    -- three live states). NULL for final states.
    next_attempt_at  INTEGER,
    last_http_status INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT    NOT NULL DEFAULT '',
    last_delay_ms    INTEGER NOT NULL DEFAULT 0,
    last_delay_why   TEXT    NOT NULL DEFAULT '',
    lease_owner      TEXT    NOT NULL DEFAULT '',
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- Claim, NextDue and the retry pane (state = ? ORDER BY next_attempt_at).
CREATE INDEX leads_state_due ON leads (state, next_attempt_at, id);
-- Every other pane (state = ? ORDER BY updated_at DESC).
CREATE INDEX leads_state_updated ON leads (state, updated_at, id);
-- Linking callbacks that only carry the CRM's id.
CREATE INDEX leads_crm_id ON leads (crm_id);

CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    lead_id         INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL CHECK (kind IN ('send', 'resubmit')),
    number          INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_us     INTEGER NOT NULL DEFAULT 0,
    http_status     INTEGER NOT NULL DEFAULT 0,
    response_body   BLOB,
    error           TEXT    NOT NULL DEFAULT '',
    outcome         TEXT    NOT NULL,
    delay_ms        INTEGER NOT NULL DEFAULT 0,
    delay_why       TEXT    NOT NULL DEFAULT '',
    note            TEXT    NOT NULL DEFAULT '',
    prev_payload    BLOB
);
CREATE INDEX attempts_lead ON attempts (lead_id, id);
-- Throughput: sends per bucket over a recent range.
CREATE INDEX attempts_kind_started ON attempts (kind, started_at);

CREATE TABLE callbacks (
    id          INTEGER PRIMARY KEY,
    dedup_key   TEXT    NOT NULL UNIQUE,
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
CREATE INDEX callbacks_lead ON callbacks (lead_id, id);
-- Late linking: a callback that names only the CRM id can arrive before the
-- attempt that learned that id is recorded.
CREATE INDEX callbacks_internal_id ON callbacks (internal_id);
-- Throughput: callbacks per bucket over a recent range.
CREATE INDEX callbacks_received ON callbacks (received_at);

CREATE TABLE refusals (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    remote_addr TEXT    NOT NULL DEFAULT '',
    http_status INTEGER NOT NULL DEFAULT 0,
    code        TEXT    NOT NULL DEFAULT '',
    detail      TEXT    NOT NULL DEFAULT '',
    head        BLOB
);

-- Counters kept in the same transaction as the rows they count, so the
-- header never scans a million rows. Triggers keep them exact whatever
-- statement changes the rows.
CREATE TABLE lead_counts (
    state TEXT    PRIMARY KEY,
    n     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO lead_counts (state, n) VALUES
    ('queued', 0), ('in_flight', 0), ('retry_wait', 0), ('accepted', 0),
    ('duplicate', 0), ('validation_error', 0), ('rejected', 0), ('failed', 0);

CREATE TABLE counters (
    name TEXT    PRIMARY KEY,
    n    INTEGER NOT NULL DEFAULT 0
);
INSERT INTO counters (name, n) VALUES ('callbacks', 0), ('callbacks_unmatched', 0), ('refusals', 0);

CREATE TRIGGER leads_count_insert AFTER INSERT ON leads
BEGIN
    UPDATE lead_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER leads_count_delete AFTER DELETE ON leads
BEGIN
    UPDATE lead_counts SET n = n - 1 WHERE state = OLD.state;
END;

CREATE TRIGGER leads_count_update AFTER UPDATE OF state ON leads
WHEN OLD.state <> NEW.state
BEGIN
    UPDATE lead_counts SET n = n - 1 WHERE state = OLD.state;
    UPDATE lead_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER callbacks_count_insert AFTER INSERT ON callbacks
BEGIN
    UPDATE counters SET n = n + 1 WHERE name = 'callbacks';
    UPDATE counters SET n = n + 1 WHERE name = 'callbacks_unmatched' AND NEW.lead_id IS NULL;
END;

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

CREATE TRIGGER refusals_count_insert AFTER INSERT ON refusals
BEGIN
    UPDATE counters SET n = n + 1 WHERE name = 'refusals';
END;

CREATE TRIGGER refusals_count_delete AFTER DELETE ON refusals
BEGIN
    UPDATE counters SET n = n - 1 WHERE name = 'refusals';
END;
