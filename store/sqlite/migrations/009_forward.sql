-- 009_forward: forwarding's durable queue (docs/protocol.md §5). Every
-- callback row stored after the cursor becomes one delivery, moved into
-- the queue by ClaimDeliveries rather than by SaveCallbacks, so the
-- listener's own transaction carries nothing for it.
--
-- Every statement tolerates its object being there already: a database
-- rolled back to an older version by hand (the upgrade tests do) runs it
-- again over the queue it kept.

-- One row once a forwarder has started: the newest callback already moved
-- into the queue (history before the start is only forwarded by replay).
CREATE TABLE IF NOT EXISTS forward_cursor (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    last_callback_id INTEGER NOT NULL,
    started_at       INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS deliveries (
    id          INTEGER PRIMARY KEY,
    callback_id INTEGER NOT NULL REFERENCES callbacks (id),
    -- The callback's lead when it was queued: the order key. NULL for an
    -- unmatched callback, which waits on nothing.
    lead_id     INTEGER,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    -- When a pending delivery is due; for an in_flight one a mirror of
    -- lease_until, so that one index finds both the due and the expired.
    next_at     INTEGER NOT NULL,
    lease_owner TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER,
    replay      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    last_error  TEXT    NOT NULL DEFAULT ''
);
-- ClaimDeliveries: the due and the expired, oldest due first.
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at, id);
-- Order per lead: an earlier delivery of the lead still live blocks a
-- later one. Only live rows, so the check never walks a lead's history.
CREATE INDEX IF NOT EXISTS deliveries_live_lead ON deliveries (lead_id, callback_id, id)
    WHERE state IN ('pending', 'in_flight');
-- The timeline: a lead's callbacks' deliveries.
CREATE INDEX IF NOT EXISTS deliveries_callback ON deliveries (callback_id);
-- ForwardStats' oldest pending, without walking the queue.
CREATE INDEX IF NOT EXISTS deliveries_pending_created ON deliveries (created_at) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS forward_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status      INTEGER NOT NULL DEFAULT 0,
    head        BLOB,                             -- the app's first bytes
    latency_us  INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    delivered   INTEGER NOT NULL DEFAULT 0,
    final       INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER
);
CREATE INDEX IF NOT EXISTS forward_attempts_delivery ON forward_attempts (delivery_id, id);
-- ForwardStats' newest delivery and newest error, one index step each.
CREATE INDEX IF NOT EXISTS forward_attempts_outcome ON forward_attempts (delivered, id);

-- The queue's counts per state, kept by triggers in the writing
-- statement's transaction, as lead_counts are: the header reads them on
-- every refresh.
INSERT OR IGNORE INTO counters (name, n) VALUES
    ('fwd_pending', 0), ('fwd_in_flight', 0), ('fwd_delivered', 0), ('fwd_failed', 0);

CREATE TRIGGER IF NOT EXISTS deliveries_count_insert AFTER INSERT ON deliveries
BEGIN
    UPDATE counters SET n = n + 1 WHERE name = 'fwd_' || NEW.state;
END;

CREATE TRIGGER IF NOT EXISTS deliveries_count_delete AFTER DELETE ON deliveries
BEGIN
    UPDATE counters SET n = n - 1 WHERE name = 'fwd_' || OLD.state;
END;

CREATE TRIGGER IF NOT EXISTS deliveries_count_update AFTER UPDATE OF state ON deliveries
WHEN OLD.state <> NEW.state
BEGIN
    UPDATE counters SET n = n - 1 WHERE name = 'fwd_' || OLD.state;
    UPDATE counters SET n = n + 1 WHERE name = 'fwd_' || NEW.state;
END;
