-- 008_reconcile: statuses learned by status lookups (docs/protocol.md §6).
--
-- A polled status is a row of callbacks with kind 'polled' whose raw_body
-- is the status_polled event leadwatch wrote, so the timeline, tail and
-- the forwarder read it like any stored callback and tell it apart by
-- kind. Its identity (internal_id, event, timestamp) is (the CRM id, '',
-- the lookup's unix ms): no verified callback can have an empty event
-- (crm.ParseCallback and SaveCallbacks refuse one), so a polled row never
-- takes a real callback's identity and the real callback for the same
-- change, arriving later, is stored and forwarded, not answered as a
-- replay. The event's name is in the raw body.
ALTER TABLE callbacks ADD COLUMN kind TEXT NOT NULL DEFAULT 'callback'
    CHECK (kind IN ('callback', 'polled'));

-- What the lookups need on leads: when the last one was handed out (set
-- by ClaimLookups, so two instances never look one lead up at once and a
-- lead is not looked up again before its interval) and how many there
-- were.
ALTER TABLE leads ADD COLUMN last_lookup_at INTEGER;
ALTER TABLE leads ADD COLUMN lookups INTEGER NOT NULL DEFAULT 0;

-- Due candidates, cheaply at a million leads. A lead is due when its last
-- news (its acceptance or status, or the last lookup, whichever is later)
-- is older than reconcile.after (no status yet) or reconcile.stale (a
-- status not final). The two partial indexes are ordered by that time, so
-- a claim reads the due entries only, never the leads whose lookup is not
-- due or that are not accepted. Which statuses are final is configuration,
-- not data, so the stale index leads with crm_status: a claim skips from
-- one distinct status to the next (a few seeks) and reads the ranges of
-- the statuses that are not final, never the millions of ftd leads. The
-- expressions must stay the ones ClaimLookups writes (sqlite/reconcile.go)
-- for the planner to use them.
CREATE INDEX leads_lookup_new ON leads (MAX(COALESCE(accepted_at, 0), COALESCE(last_lookup_at, 0)), id)
    WHERE state = 'accepted' AND crm_status = '';
CREATE INDEX leads_lookup_stale ON leads (crm_status, MAX(COALESCE(crm_status_at, 0), COALESCE(last_lookup_at, 0)), id)
    WHERE state = 'accepted' AND crm_status <> '';

-- Polled rows are counted apart (Counts.Polled), never as callbacks
-- verified, unmatched or in the callback throughput.
INSERT INTO counters (name, n) SELECT 'polled', 0
    WHERE NOT EXISTS (SELECT 1 FROM counters WHERE name = 'polled');

DROP TRIGGER callbacks_count_insert;
CREATE TRIGGER callbacks_count_insert AFTER INSERT ON callbacks
WHEN NEW.kind = 'callback' AND (SELECT n FROM counters WHERE name = 'callbacks_batch') = 0
BEGIN
    UPDATE counters SET n = n + 1 WHERE name = 'callbacks';
    UPDATE counters SET n = n + 1 WHERE name = 'callbacks_unmatched' AND NEW.lead_id IS NULL;
END;

DROP TRIGGER callbacks_throughput;
CREATE TRIGGER callbacks_throughput AFTER INSERT ON callbacks
WHEN NEW.kind = 'callback' AND (SELECT n FROM counters WHERE name = 'callbacks_batch') = 0
BEGIN
    INSERT INTO throughput (sec, callbacks) VALUES (NEW.received_at / 1000, 1)
        ON CONFLICT (sec) DO UPDATE SET callbacks = callbacks + 1;
END;

CREATE TRIGGER callbacks_polled_insert AFTER INSERT ON callbacks
WHEN NEW.kind = 'polled'
BEGIN
    UPDATE counters SET n = n + 1 WHERE name = 'polled';
END;

DROP TRIGGER callbacks_count_delete;
CREATE TRIGGER callbacks_count_delete AFTER DELETE ON callbacks
BEGIN
    UPDATE counters SET n = n - 1 WHERE name = 'callbacks' AND OLD.kind = 'callback';
    UPDATE counters SET n = n - 1 WHERE name = 'callbacks_unmatched' AND OLD.kind = 'callback'
        AND OLD.lead_id IS NULL;
    UPDATE counters SET n = n - 1 WHERE name = 'polled' AND OLD.kind = 'polled';
END;

-- A polled row whose lead is deleted (lead_id set NULL) is not an
-- unmatched callback.
DROP TRIGGER callbacks_count_link;
CREATE TRIGGER callbacks_count_link AFTER UPDATE OF lead_id ON callbacks
WHEN NEW.kind = 'callback' AND (OLD.lead_id IS NULL) <> (NEW.lead_id IS NULL)
BEGIN
    UPDATE counters SET n = n + (CASE WHEN NEW.lead_id IS NULL THEN 1 ELSE -1 END)
        WHERE name = 'callbacks_unmatched';
END;
