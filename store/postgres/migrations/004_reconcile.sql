-- 004_reconcile: statuses learned by status lookups (docs/protocol.md §6),
-- as store/sqlite's 008.
--
-- A polled status is a row of callbacks with kind 'polled' whose raw_body
-- is the status_polled event leadwatch wrote. Its identity (internal_id,
-- event, timestamp) is (the CRM id, '', the lookup's unix ms): no verified
-- callback has an empty event (crm.ParseCallback and SaveCallbacks refuse
-- one), so a polled row never takes a real callback's identity, and the
-- real callback for the same change is stored and forwarded when it
-- comes, not answered as a replay. A constant default: no table rewrite.
ALTER TABLE callbacks ADD COLUMN kind TEXT NOT NULL DEFAULT 'callback'
    CHECK (kind IN ('callback', 'polled'));

-- When the last lookup was handed out (ClaimLookups: one instance at a
-- time, and not again before its interval) and how many there were.
ALTER TABLE leads
    ADD COLUMN last_lookup_at BIGINT,
    ADD COLUMN lookups        INTEGER NOT NULL DEFAULT 0;

-- Due candidates (see sqlite 008): accepted leads by their last news (the
-- acceptance or status, or the last lookup, whichever is later), the
-- leads with no status apart from those with one. The stale index leads
-- with crm_status so a claim skips from one distinct status to the next
-- and reads only the ranges of statuses that are not final (final is
-- configuration). The expressions must stay the ones ClaimLookups writes
-- (postgres/reconcile.go) for the planner to use them.
CREATE INDEX leads_lookup_new ON leads (GREATEST(COALESCE(accepted_at, 0), COALESCE(last_lookup_at, 0)), id)
    WHERE state = 'accepted' AND crm_status = '';
CREATE INDEX leads_lookup_stale ON leads (crm_status, GREATEST(COALESCE(crm_status_at, 0), COALESCE(last_lookup_at, 0)), id)
    WHERE state = 'accepted' AND crm_status <> '';

-- Polled rows are counted apart ('polled' in count_deltas, Counts.Polled),
-- never as callbacks verified, unmatched or in the callback throughput.
CREATE OR REPLACE FUNCTION lw_callbacks_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO count_deltas (name, n)
            SELECT name, n FROM (
                SELECT 'callbacks' AS name, count(*) AS n FROM new_rows WHERE kind = 'callback'
                UNION ALL
                SELECT 'callbacks_unmatched', count(*) FROM new_rows WHERE kind = 'callback' AND lead_id IS NULL
                UNION ALL
                SELECT 'polled', count(*) FROM new_rows WHERE kind = 'polled') s
            WHERE n <> 0;
        INSERT INTO throughput_deltas (sec, callbacks)
            SELECT received_at / 1000, count(*) FROM new_rows WHERE kind = 'callback' GROUP BY received_at / 1000;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO count_deltas (name, n)
            SELECT name, n FROM (
                SELECT 'callbacks' AS name, -count(*) AS n FROM old_rows WHERE kind = 'callback'
                UNION ALL
                SELECT 'callbacks_unmatched', -count(*) FROM old_rows WHERE kind = 'callback' AND lead_id IS NULL
                UNION ALL
                SELECT 'polled', -count(*) FROM old_rows WHERE kind = 'polled') s
            WHERE n <> 0;
    ELSE
        INSERT INTO count_deltas (name, n)
            SELECT 'callbacks_unmatched', n FROM (
                SELECT (SELECT count(*) FROM new_rows WHERE kind = 'callback' AND lead_id IS NULL)
                     - (SELECT count(*) FROM old_rows WHERE kind = 'callback' AND lead_id IS NULL) AS n) s
            WHERE n <> 0;
    END IF;
    RETURN NULL;
END $$;
