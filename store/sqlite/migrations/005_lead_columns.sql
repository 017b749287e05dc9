-- 005_lead_columns: what the operator actions, pauses and the pulse need
-- (issue 11); 006 adds the Sources report's aggregates.
--
-- Leads gain the state 'held' and the columns source, funnel, sub_id,
-- country (the payload's traffic source fields, crm.LeadFields), hold (why
-- a held lead is held), accepted_at, first_status_at and ftd_at. SQLite
-- cannot change a CHECK in place, so the table is rebuilt: same ids, every
-- row kept, every index and trigger made again. The migration runs with
-- foreign keys off (store.go: migrateOne), so dropping the old table does
-- not cascade into attempts and callbacks, whose REFERENCES name "leads"
-- and so point at the new table once it is renamed; migrateOne runs
-- foreign_key_check before it commits.

CREATE TABLE leads_new (
    id               INTEGER PRIMARY KEY,
    external_id      TEXT    NOT NULL UNIQUE,
    payload          BLOB    NOT NULL,            -- the exact bytes sent and signed
    idempotency_key  TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'in_flight', 'retry_wait', 'held',
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
    -- three live states). NULL for final and held states.
    next_attempt_at  INTEGER,
    last_http_status INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT    NOT NULL DEFAULT '',
    last_delay_ms    INTEGER NOT NULL DEFAULT 0,
    last_delay_why   TEXT    NOT NULL DEFAULT '',
    lease_owner      TEXT    NOT NULL DEFAULT '',
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    -- The payload's traffic source fields, cut to 200 bytes (crm.LeadFields).
    source           TEXT    NOT NULL DEFAULT '',
    funnel           TEXT    NOT NULL DEFAULT '',
    sub_id           TEXT    NOT NULL DEFAULT '',
    country          TEXT    NOT NULL DEFAULT '',
    hold             TEXT    NOT NULL DEFAULT '', -- 'operator', 'source' or 'sub_id' while held, else ''
    accepted_at      INTEGER,                     -- when it became accepted
    first_status_at  INTEGER,                     -- received_at of its first status callback
    ftd_at           INTEGER                      -- received_at of its first callback with status ftd
);

-- Existing rows: the source fields as crm.CheckLead reads them (a string as
-- it is, a number as its JSON text, anything else ''); Go cuts the few
-- longer than 200 bytes after this script (stats.go: cutGroupValues), at a
-- UTF-8 boundary as crm.CutGroupValue does. accepted_at is the end of the
-- accepted attempt (else the last update); the status times come from the
-- callbacks linked already.
INSERT INTO leads_new (id, external_id, payload, idempotency_key, state, crm_id, crm_status, crm_status_at,
        reason, phone_invalid, attempts, next_attempt_at, last_http_status, last_error, last_delay_ms,
        last_delay_why, lease_owner, lease_expires_at, created_at, updated_at,
        source, funnel, sub_id, country, accepted_at, first_status_at, ftd_at)
    SELECT id, external_id, payload, idempotency_key, state, crm_id, crm_status, crm_status_at,
        reason, phone_invalid, attempts, next_attempt_at, last_http_status, last_error, last_delay_ms,
        last_delay_why, lease_owner, lease_expires_at, created_at, updated_at,
        CASE WHEN json_valid(p) THEN CASE json_type(p, '$.source')
            WHEN 'text' THEN json_extract(p, '$.source') WHEN 'integer' THEN p -> '$.source'
            WHEN 'real' THEN p -> '$.source' ELSE '' END ELSE '' END,
        CASE WHEN json_valid(p) THEN CASE json_type(p, '$.funnel')
            WHEN 'text' THEN json_extract(p, '$.funnel') WHEN 'integer' THEN p -> '$.funnel'
            WHEN 'real' THEN p -> '$.funnel' ELSE '' END ELSE '' END,
        CASE WHEN json_valid(p) THEN CASE json_type(p, '$.sub_id')
            WHEN 'text' THEN json_extract(p, '$.sub_id') WHEN 'integer' THEN p -> '$.sub_id'
            WHEN 'real' THEN p -> '$.sub_id' ELSE '' END ELSE '' END,
        CASE WHEN json_valid(p) THEN CASE json_type(p, '$.country')
            WHEN 'text' THEN json_extract(p, '$.country') WHEN 'integer' THEN p -> '$.country'
            WHEN 'real' THEN p -> '$.country' ELSE '' END ELSE '' END,
        CASE WHEN state = 'accepted' THEN COALESCE(
            (SELECT MAX(a.started_at + a.duration_us / 1000) FROM attempts a
                WHERE a.lead_id = l.id AND a.outcome = 'accepted'), updated_at) END,
        (SELECT MIN(c.received_at) FROM callbacks c WHERE c.lead_id = l.id AND c.status <> ''),
        (SELECT MIN(c.received_at) FROM callbacks c WHERE c.lead_id = l.id AND lower(c.status) = 'ftd')
    FROM (SELECT *, CAST(payload AS TEXT) AS p FROM leads) AS l;

-- Dropping the old table drops its indexes and triggers; its implicit
-- delete fires none, so lead_counts stays as it is, which is right.
DROP TABLE leads;
ALTER TABLE leads_new RENAME TO leads;

-- The indexes of 001 and 003, as they were.
CREATE INDEX leads_state_due ON leads (state, next_attempt_at, id);
CREATE INDEX leads_state_updated ON leads (state, updated_at, id, external_id, crm_id, reason);
CREATE INDEX leads_crm_id ON leads (crm_id);

INSERT INTO lead_counts (state, n) SELECT 'held', 0
    WHERE NOT EXISTS (SELECT 1 FROM lead_counts WHERE state = 'held');

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

-- Pauses: the sources and sub_ids whose leads are held instead of sent.
CREATE TABLE pauses (
    field TEXT    NOT NULL CHECK (field IN ('source', 'sub_id')),
    value TEXT    NOT NULL,
    at    INTEGER NOT NULL,
    PRIMARY KEY (field, value)
) WITHOUT ROWID;

-- Throughput gains what the pulse and the per-minute charts show:
-- answered (send attempts with an HTTP answer), accepted and failed (by
-- outcome, at the attempt's start, like sent) and refused (refusals
-- stored). Existing seconds are filled from the rows still there.
ALTER TABLE throughput ADD COLUMN answered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE throughput ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE throughput ADD COLUMN failed   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE throughput ADD COLUMN refused  INTEGER NOT NULL DEFAULT 0;

INSERT INTO throughput (sec, answered, accepted, failed)
    SELECT started_at / 1000, SUM(http_status > 0), SUM(outcome = 'accepted'), SUM(outcome = 'failed')
    FROM attempts WHERE kind = 'send' GROUP BY started_at / 1000
    ON CONFLICT (sec) DO UPDATE SET answered = excluded.answered, accepted = excluded.accepted,
        failed = excluded.failed;
INSERT INTO throughput (sec, refused)
    SELECT at / 1000, COUNT(*) FROM refusals WHERE true GROUP BY at / 1000
    ON CONFLICT (sec) DO UPDATE SET refused = excluded.refused;

-- Fill counts its own attempts once per batch, with the 'leads_batch'
-- gate closed (counters; 1 only inside Fill's transaction, as
-- 'callbacks_batch' is for SaveCallbacks): per row, this trigger and the
-- minute rollup's below were a third of its time.
INSERT INTO counters (name, n) SELECT 'leads_batch', 0
    WHERE NOT EXISTS (SELECT 1 FROM counters WHERE name = 'leads_batch');

DROP TRIGGER attempts_throughput;
CREATE TRIGGER attempts_throughput AFTER INSERT ON attempts
WHEN NEW.kind = 'send' AND (SELECT n FROM counters WHERE name = 'leads_batch') = 0
BEGIN
    INSERT INTO throughput (sec, sent, answered, accepted, failed)
        VALUES (NEW.started_at / 1000, 1, NEW.http_status > 0, NEW.outcome = 'accepted', NEW.outcome = 'failed')
        ON CONFLICT (sec) DO UPDATE SET sent = sent + 1, answered = answered + excluded.answered,
            accepted = accepted + excluded.accepted, failed = failed + excluded.failed;
END;

CREATE TRIGGER refusals_throughput AFTER INSERT ON refusals
BEGIN
    INSERT INTO throughput (sec, refused) VALUES (NEW.at / 1000, 1)
        ON CONFLICT (sec) DO UPDATE SET refused = refused + 1;
END;

-- The per-minute rollup of throughput (min: the minute's start in unix
-- seconds), so a day of charts reads 1,440 rows, not 86,400. Every change
-- to a second's row adds its difference to its minute, whoever wrote it
-- (the triggers above, SaveCallbacks' batch count).
CREATE TABLE throughput_min (
    min       INTEGER PRIMARY KEY,
    sent      INTEGER NOT NULL DEFAULT 0,
    callbacks INTEGER NOT NULL DEFAULT 0,
    answered  INTEGER NOT NULL DEFAULT 0,
    accepted  INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    refused   INTEGER NOT NULL DEFAULT 0
);

INSERT INTO throughput_min (min, sent, callbacks, answered, accepted, failed, refused)
    SELECT sec / 60 * 60, SUM(sent), SUM(callbacks), SUM(answered), SUM(accepted), SUM(failed), SUM(refused)
    FROM throughput GROUP BY sec / 60;

CREATE TRIGGER throughput_min_insert AFTER INSERT ON throughput
BEGIN
    INSERT INTO throughput_min (min, sent, callbacks, answered, accepted, failed, refused)
        VALUES (NEW.sec / 60 * 60, NEW.sent, NEW.callbacks, NEW.answered, NEW.accepted, NEW.failed, NEW.refused)
        ON CONFLICT (min) DO UPDATE SET sent = sent + excluded.sent, callbacks = callbacks + excluded.callbacks,
            answered = answered + excluded.answered, accepted = accepted + excluded.accepted,
            failed = failed + excluded.failed, refused = refused + excluded.refused;
END;

CREATE TRIGGER throughput_min_update AFTER UPDATE ON throughput
BEGIN
    INSERT INTO throughput_min (min, sent, callbacks, answered, accepted, failed, refused)
        VALUES (NEW.sec / 60 * 60, NEW.sent - OLD.sent, NEW.callbacks - OLD.callbacks,
            NEW.answered - OLD.answered, NEW.accepted - OLD.accepted, NEW.failed - OLD.failed,
            NEW.refused - OLD.refused)
        ON CONFLICT (min) DO UPDATE SET sent = sent + excluded.sent, callbacks = callbacks + excluded.callbacks,
            answered = answered + excluded.answered, accepted = accepted + excluded.accepted,
            failed = failed + excluded.failed, refused = refused + excluded.refused;
END;
