-- 006_source_stats: the Sources report's aggregates (issue 11), kept by
-- triggers on leads. The existing leads are added by Go right after this
-- script, in the same transaction (stats.go: migrationFixups), with the
-- sums Fill uses (stats.go: statsAcc).

-- The Sources report, pre-aggregated: per group field and value, per
-- minute of creation (bucket: the minute's start in unix ms) and for all
-- time (bucket -1), what the leads contribute by their current columns:
-- one count for the final state they are in, with_status and a first
-- status latency bucket (h0..h17, crm.LatencyBounds) once a status came,
-- ftd once one said ftd. Triggers keep it in the same transaction as the
-- change, subtracting a lead's old contribution and adding the new one.
-- The key leads with (field, bucket) so a report is one range: the
-- all-time rows of a field, or its minutes since a time.
CREATE TABLE source_stats (
    field            TEXT    NOT NULL,
    bucket           INTEGER NOT NULL,
    value            TEXT    NOT NULL,
    accepted         INTEGER NOT NULL DEFAULT 0,
    duplicate        INTEGER NOT NULL DEFAULT 0,
    rejected         INTEGER NOT NULL DEFAULT 0,
    validation_error INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    with_status      INTEGER NOT NULL DEFAULT 0,
    ftd              INTEGER NOT NULL DEFAULT 0,
    h0 INTEGER NOT NULL DEFAULT 0, h1 INTEGER NOT NULL DEFAULT 0, h2 INTEGER NOT NULL DEFAULT 0,
    h3 INTEGER NOT NULL DEFAULT 0, h4 INTEGER NOT NULL DEFAULT 0, h5 INTEGER NOT NULL DEFAULT 0,
    h6 INTEGER NOT NULL DEFAULT 0, h7 INTEGER NOT NULL DEFAULT 0, h8 INTEGER NOT NULL DEFAULT 0,
    h9 INTEGER NOT NULL DEFAULT 0, h10 INTEGER NOT NULL DEFAULT 0, h11 INTEGER NOT NULL DEFAULT 0,
    h12 INTEGER NOT NULL DEFAULT 0, h13 INTEGER NOT NULL DEFAULT 0, h14 INTEGER NOT NULL DEFAULT 0,
    h15 INTEGER NOT NULL DEFAULT 0, h16 INTEGER NOT NULL DEFAULT 0, h17 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (field, bucket, value)
) WITHOUT ROWID;

-- Fill writes its leads with the insert trigger off and adds the
-- batch's numbers itself (fill.go), as SaveCallbacks does for callbacks:
-- the 'leads_batch' row (005) is 1 only inside Fill's transaction.

-- stats_delta is where the leads triggers write a lead's contribution,
-- signed (s = -1 for the old row, 1 for the new one): a view with nothing
-- in it whose INSTEAD OF trigger turns one row into the upserts, so the
-- expressions are written once for the triggers (stats.go's statsAcc
-- is the same sums in Go, for Fill and this migration's existing
-- leads). A side that contributes nothing upserts
-- nothing; one that does upserts 8 rows (4 fields, its minute and all
-- time) in each of the triggers below that applies. The latency bucket hb is crm.LatencyBucket in ms: a status before
-- the acceptance was recorded, or without one, is bucket 0.
CREATE VIEW stats_delta AS SELECT 0 AS s, 0 AS created_at, '' AS source, '' AS funnel, '' AS sub_id,
    '' AS country, '' AS state, 0 AS accepted_at, 0 AS first_status_at, 0 AS ftd_at WHERE false;

-- Two triggers, so the common change (a lead reaching a final state: one
-- per sent lead) upserts the five state columns only, and the status
-- columns (with_status, ftd and the 18 latency buckets) are written only
-- for a lead that has a status: an upsert's cost grows with the columns
-- it computes and adds, and Record is the sender's hot path.
CREATE TRIGGER stats_delta_states INSTEAD OF INSERT ON stats_delta
WHEN NEW.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
BEGIN
    INSERT INTO source_stats (field, bucket, value, accepted, duplicate, rejected, validation_error, failed)
        SELECT k.field, k.bucket, k.value, NEW.s * (NEW.state = 'accepted'), NEW.s * (NEW.state = 'duplicate'),
            NEW.s * (NEW.state = 'rejected'), NEW.s * (NEW.state = 'validation_error'), NEW.s * (NEW.state = 'failed')
        FROM (SELECT 'source' AS field, -1 AS bucket, NEW.source AS value
                UNION ALL SELECT 'source', NEW.created_at / 60000 * 60000, NEW.source
                UNION ALL SELECT 'funnel', -1, NEW.funnel
                UNION ALL SELECT 'funnel', NEW.created_at / 60000 * 60000, NEW.funnel
                UNION ALL SELECT 'sub_id', -1, NEW.sub_id
                UNION ALL SELECT 'sub_id', NEW.created_at / 60000 * 60000, NEW.sub_id
                UNION ALL SELECT 'country', -1, NEW.country
                UNION ALL SELECT 'country', NEW.created_at / 60000 * 60000, NEW.country) AS k
        WHERE true
        ON CONFLICT (field, bucket, value) DO UPDATE SET
            accepted = accepted + excluded.accepted, duplicate = duplicate + excluded.duplicate,
            rejected = rejected + excluded.rejected, validation_error = validation_error + excluded.validation_error,
            failed = failed + excluded.failed;
END;

CREATE TRIGGER stats_delta_status INSTEAD OF INSERT ON stats_delta
WHEN NEW.first_status_at IS NOT NULL OR NEW.ftd_at IS NOT NULL
BEGIN
    INSERT INTO source_stats (field, bucket, value,
            with_status, ftd, h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17)
        SELECT k.field, k.bucket, k.value, c.ws, c.ftd,
            c.ws * (c.hb = 0), c.ws * (c.hb = 1), c.ws * (c.hb = 2), c.ws * (c.hb = 3), c.ws * (c.hb = 4),
            c.ws * (c.hb = 5), c.ws * (c.hb = 6), c.ws * (c.hb = 7), c.ws * (c.hb = 8), c.ws * (c.hb = 9),
            c.ws * (c.hb = 10), c.ws * (c.hb = 11), c.ws * (c.hb = 12), c.ws * (c.hb = 13), c.ws * (c.hb = 14),
            c.ws * (c.hb = 15), c.ws * (c.hb = 16), c.ws * (c.hb = 17)
        FROM (SELECT NEW.s * (NEW.first_status_at IS NOT NULL) AS ws, NEW.s * (NEW.ftd_at IS NOT NULL) AS ftd,
                CASE WHEN NEW.first_status_at IS NULL OR NEW.accepted_at IS NULL THEN 0 ELSE
                    CASE WHEN d <= 1000 THEN 0 WHEN d <= 2000 THEN 1 WHEN d <= 5000 THEN 2
                        WHEN d <= 10000 THEN 3 WHEN d <= 20000 THEN 4 WHEN d <= 30000 THEN 5
                        WHEN d <= 60000 THEN 6 WHEN d <= 120000 THEN 7 WHEN d <= 300000 THEN 8
                        WHEN d <= 600000 THEN 9 WHEN d <= 1200000 THEN 10 WHEN d <= 1800000 THEN 11
                        WHEN d <= 3600000 THEN 12 WHEN d <= 7200000 THEN 13 WHEN d <= 21600000 THEN 14
                        WHEN d <= 43200000 THEN 15 WHEN d <= 86400000 THEN 16 ELSE 17 END END AS hb
            FROM (SELECT NEW.first_status_at - NEW.accepted_at AS d)) AS c,
            (SELECT 'source' AS field, -1 AS bucket, NEW.source AS value
                UNION ALL SELECT 'source', NEW.created_at / 60000 * 60000, NEW.source
                UNION ALL SELECT 'funnel', -1, NEW.funnel
                UNION ALL SELECT 'funnel', NEW.created_at / 60000 * 60000, NEW.funnel
                UNION ALL SELECT 'sub_id', -1, NEW.sub_id
                UNION ALL SELECT 'sub_id', NEW.created_at / 60000 * 60000, NEW.sub_id
                UNION ALL SELECT 'country', -1, NEW.country
                UNION ALL SELECT 'country', NEW.created_at / 60000 * 60000, NEW.country) AS k
        WHERE true
        ON CONFLICT (field, bucket, value) DO UPDATE SET
            with_status = with_status + excluded.with_status, ftd = ftd + excluded.ftd,
            h0 = h0 + excluded.h0, h1 = h1 + excluded.h1, h2 = h2 + excluded.h2, h3 = h3 + excluded.h3,
            h4 = h4 + excluded.h4, h5 = h5 + excluded.h5, h6 = h6 + excluded.h6, h7 = h7 + excluded.h7,
            h8 = h8 + excluded.h8, h9 = h9 + excluded.h9, h10 = h10 + excluded.h10, h11 = h11 + excluded.h11,
            h12 = h12 + excluded.h12, h13 = h13 + excluded.h13, h14 = h14 + excluded.h14,
            h15 = h15 + excluded.h15, h16 = h16 + excluded.h16, h17 = h17 + excluded.h17;
END;

-- The leads triggers. Enqueue (queued) and Claim (queued or retry_wait to
-- in_flight) change nothing the report counts, so their WHEN is false
-- before it reads the gate; a CRM status update does not name these
-- columns, so it does not even test the WHEN. Fill inserts with the gate
-- closed (counters 'leads_batch' = 1).
CREATE TRIGGER leads_stats_insert AFTER INSERT ON leads
WHEN (NEW.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
        OR NEW.first_status_at IS NOT NULL OR NEW.ftd_at IS NOT NULL)
    AND (SELECT n FROM counters WHERE name = 'leads_batch') = 0
BEGIN
    INSERT INTO stats_delta VALUES (1, NEW.created_at, NEW.source, NEW.funnel, NEW.sub_id, NEW.country,
        NEW.state, NEW.accepted_at, NEW.first_status_at, NEW.ftd_at);
END;

CREATE TRIGGER leads_stats_delete AFTER DELETE ON leads
BEGIN
    INSERT INTO stats_delta VALUES (-1, OLD.created_at, OLD.source, OLD.funnel, OLD.sub_id, OLD.country,
        OLD.state, OLD.accepted_at, OLD.first_status_at, OLD.ftd_at);
END;

CREATE TRIGGER leads_stats_update
AFTER UPDATE OF state, accepted_at, first_status_at, ftd_at, source, funnel, sub_id, country, created_at ON leads
WHEN (OLD.state <> NEW.state AND (OLD.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
        OR NEW.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')))
    OR OLD.accepted_at IS NOT NEW.accepted_at OR OLD.first_status_at IS NOT NEW.first_status_at
    OR OLD.ftd_at IS NOT NEW.ftd_at OR OLD.source <> NEW.source OR OLD.funnel <> NEW.funnel
    OR OLD.sub_id <> NEW.sub_id OR OLD.country <> NEW.country OR OLD.created_at <> NEW.created_at
BEGIN
    INSERT INTO stats_delta VALUES (-1, OLD.created_at, OLD.source, OLD.funnel, OLD.sub_id, OLD.country,
        OLD.state, OLD.accepted_at, OLD.first_status_at, OLD.ftd_at);
    INSERT INTO stats_delta VALUES (1, NEW.created_at, NEW.source, NEW.funnel, NEW.sub_id, NEW.country,
        NEW.state, NEW.accepted_at, NEW.first_status_at, NEW.ftd_at);
END;

