-- 007_stats_deltas: the Sources aggregates off the sender's hot path
-- (issue 11). 006's triggers upserted 8 rows of source_stats (4 fields,
-- the lead's minute and all time) in the transaction of every lead
-- reaching its final state, and again when its first status came: random
-- keys of a WITHOUT ROWID table, most of Record's time. Now a change to a
-- counted column appends ONE row to stats_deltas (a rowid table, so the
-- append lands on its last page), and the fold (stats.go: foldStats, run
-- by every writable handle on an interval) merges the committed deltas
-- into source_stats in one write transaction: read the highest id, add
-- the rows up to it, delete them. Two handles on one file fold one after
-- the other (SQLite's write lock), the second finding nothing left.
-- Report sums source_stats and the deltas not yet folded in one snapshot,
-- so its answer is exact at any moment. source_stats keeps what 006 put
-- in it; nothing is moved.

DROP TRIGGER leads_stats_insert;
DROP TRIGGER leads_stats_delete;
DROP TRIGGER leads_stats_update;
DROP VIEW stats_delta; -- and its INSTEAD OF triggers

-- A row is one lead's change of contribution within one group (its four
-- source fields and its minute of creation: bucket minute, the all-time
-- bucket is implied): the contribution it had (was) and the one it has
-- (now), each packed in one integer, 0 for none:
--
--   state (bits 0-2): 0 none, 1 accepted, 2 duplicate, 3 rejected,
--                     4 validation_error, 5 failed
--   status (bits 3-7): 0 no first status, else 1 + its latency bucket
--                     (h0..h17, crm.LatencyBucket in ms; a status without
--                     an acceptance, or before it, is bucket 0)
--   ftd (bit 8):      1 once a status said ftd
--
-- stats_fold.go (statsDecode) reads the same layout. A change
-- that also moves the lead to another group (a source field or its minute
-- changed) is two rows, the old group losing was and the new one gaining
-- now.
CREATE TABLE stats_deltas (
    id      INTEGER PRIMARY KEY,
    minute  INTEGER NOT NULL,  -- created_at's minute, unix ms of its start
    source  TEXT    NOT NULL,
    funnel  TEXT    NOT NULL,
    sub_id  TEXT    NOT NULL,
    country TEXT    NOT NULL,
    was     INTEGER NOT NULL,
    now     INTEGER NOT NULL
);

-- The triggers repeat the packing expression for OLD and NEW (a view with
-- an INSTEAD OF trigger would write it once, but runs a nested trigger
-- program per row, which is what this migration takes off the hot path).
-- Enqueue and Claim change nothing counted, so the WHENs are false before
-- they read the gate; Fill inserts with the gate closed ('leads_batch' =
-- 1, migration 005) and adds its numbers to source_stats itself.
CREATE TRIGGER leads_stats_insert AFTER INSERT ON leads
WHEN (NEW.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
        OR NEW.first_status_at IS NOT NULL OR NEW.ftd_at IS NOT NULL)
    AND (SELECT n FROM counters WHERE name = 'leads_batch') = 0
BEGIN
    INSERT INTO stats_deltas (minute, source, funnel, sub_id, country, was, now)
    VALUES (NEW.created_at / 60000 * 60000, NEW.source, NEW.funnel, NEW.sub_id, NEW.country, 0,
        CASE NEW.state WHEN 'accepted' THEN 1 WHEN 'duplicate' THEN 2 WHEN 'rejected' THEN 3
            WHEN 'validation_error' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END
        + CASE WHEN NEW.first_status_at IS NULL THEN 0 ELSE 8 + 8 * COALESCE((SELECT (d > 1000) + (d > 2000)
            + (d > 5000) + (d > 10000) + (d > 20000) + (d > 30000) + (d > 60000) + (d > 120000) + (d > 300000)
            + (d > 600000) + (d > 1200000) + (d > 1800000) + (d > 3600000) + (d > 7200000) + (d > 21600000)
            + (d > 43200000) + (d > 86400000) FROM (SELECT NEW.first_status_at - NEW.accepted_at AS d)), 0) END
        + 256 * (NEW.ftd_at IS NOT NULL));
END;

CREATE TRIGGER leads_stats_delete AFTER DELETE ON leads
WHEN OLD.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
        OR OLD.first_status_at IS NOT NULL OR OLD.ftd_at IS NOT NULL
BEGIN
    INSERT INTO stats_deltas (minute, source, funnel, sub_id, country, was, now)
    VALUES (OLD.created_at / 60000 * 60000, OLD.source, OLD.funnel, OLD.sub_id, OLD.country,
        CASE OLD.state WHEN 'accepted' THEN 1 WHEN 'duplicate' THEN 2 WHEN 'rejected' THEN 3
            WHEN 'validation_error' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END
        + CASE WHEN OLD.first_status_at IS NULL THEN 0 ELSE 8 + 8 * COALESCE((SELECT (d > 1000) + (d > 2000)
            + (d > 5000) + (d > 10000) + (d > 20000) + (d > 30000) + (d > 60000) + (d > 120000) + (d > 300000)
            + (d > 600000) + (d > 1200000) + (d > 1800000) + (d > 3600000) + (d > 7200000) + (d > 21600000)
            + (d > 43200000) + (d > 86400000) FROM (SELECT OLD.first_status_at - OLD.accepted_at AS d)), 0) END
        + 256 * (OLD.ftd_at IS NOT NULL),
        0);
END;

-- A lead that stays in its group (its source fields and minute) appends
-- one row when a counted column changed (the sender's case: in_flight,
-- which counts nothing, to a final state; a first status or ftd coming);
-- a claim or a retry scheduled does not pass the WHEN. The row may say
-- was = now (an acceptance time rewritten on a lead without a status),
-- which adds nothing.
CREATE TRIGGER leads_stats_update
AFTER UPDATE OF state, accepted_at, first_status_at, ftd_at, source, funnel, sub_id, country, created_at ON leads
WHEN ((OLD.state <> NEW.state AND (OLD.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
            OR NEW.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')))
        OR OLD.accepted_at IS NOT NEW.accepted_at OR OLD.first_status_at IS NOT NEW.first_status_at
        OR OLD.ftd_at IS NOT NEW.ftd_at)
    AND OLD.source = NEW.source AND OLD.funnel = NEW.funnel AND OLD.sub_id = NEW.sub_id
    AND OLD.country = NEW.country AND OLD.created_at / 60000 = NEW.created_at / 60000
BEGIN
    INSERT INTO stats_deltas (minute, source, funnel, sub_id, country, was, now)
    VALUES (NEW.created_at / 60000 * 60000, NEW.source, NEW.funnel, NEW.sub_id, NEW.country,
        CASE OLD.state WHEN 'accepted' THEN 1 WHEN 'duplicate' THEN 2 WHEN 'rejected' THEN 3
            WHEN 'validation_error' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END
        + CASE WHEN OLD.first_status_at IS NULL THEN 0 ELSE 8 + 8 * COALESCE((SELECT (d > 1000) + (d > 2000)
            + (d > 5000) + (d > 10000) + (d > 20000) + (d > 30000) + (d > 60000) + (d > 120000) + (d > 300000)
            + (d > 600000) + (d > 1200000) + (d > 1800000) + (d > 3600000) + (d > 7200000) + (d > 21600000)
            + (d > 43200000) + (d > 86400000) FROM (SELECT OLD.first_status_at - OLD.accepted_at AS d)), 0) END
        + 256 * (OLD.ftd_at IS NOT NULL),
        CASE NEW.state WHEN 'accepted' THEN 1 WHEN 'duplicate' THEN 2 WHEN 'rejected' THEN 3
            WHEN 'validation_error' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END
        + CASE WHEN NEW.first_status_at IS NULL THEN 0 ELSE 8 + 8 * COALESCE((SELECT (d > 1000) + (d > 2000)
            + (d > 5000) + (d > 10000) + (d > 20000) + (d > 30000) + (d > 60000) + (d > 120000) + (d > 300000)
            + (d > 600000) + (d > 1200000) + (d > 1800000) + (d > 3600000) + (d > 7200000) + (d > 21600000)
            + (d > 43200000) + (d > 86400000) FROM (SELECT NEW.first_status_at - NEW.accepted_at AS d)), 0) END
        + 256 * (NEW.ftd_at IS NOT NULL));
END;

-- A lead moved to another group (a source field rewritten, or created_at
-- in another minute): its old group loses what it had, its new one gains
-- what it has. The sender never writes these columns, so this trigger is
-- not even tested on its path.
CREATE TRIGGER leads_stats_move
AFTER UPDATE OF source, funnel, sub_id, country, created_at ON leads
WHEN (OLD.source <> NEW.source OR OLD.funnel <> NEW.funnel OR OLD.sub_id <> NEW.sub_id
        OR OLD.country <> NEW.country OR OLD.created_at / 60000 <> NEW.created_at / 60000)
    AND (OLD.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
        OR OLD.first_status_at IS NOT NULL OR OLD.ftd_at IS NOT NULL
        OR NEW.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
        OR NEW.first_status_at IS NOT NULL OR NEW.ftd_at IS NOT NULL)
BEGIN
    INSERT INTO stats_deltas (minute, source, funnel, sub_id, country, was, now)
    VALUES (OLD.created_at / 60000 * 60000, OLD.source, OLD.funnel, OLD.sub_id, OLD.country,
        CASE OLD.state WHEN 'accepted' THEN 1 WHEN 'duplicate' THEN 2 WHEN 'rejected' THEN 3
            WHEN 'validation_error' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END
        + CASE WHEN OLD.first_status_at IS NULL THEN 0 ELSE 8 + 8 * COALESCE((SELECT (d > 1000) + (d > 2000)
            + (d > 5000) + (d > 10000) + (d > 20000) + (d > 30000) + (d > 60000) + (d > 120000) + (d > 300000)
            + (d > 600000) + (d > 1200000) + (d > 1800000) + (d > 3600000) + (d > 7200000) + (d > 21600000)
            + (d > 43200000) + (d > 86400000) FROM (SELECT OLD.first_status_at - OLD.accepted_at AS d)), 0) END
        + 256 * (OLD.ftd_at IS NOT NULL),
        0),
    (NEW.created_at / 60000 * 60000, NEW.source, NEW.funnel, NEW.sub_id, NEW.country, 0,
        CASE NEW.state WHEN 'accepted' THEN 1 WHEN 'duplicate' THEN 2 WHEN 'rejected' THEN 3
            WHEN 'validation_error' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END
        + CASE WHEN NEW.first_status_at IS NULL THEN 0 ELSE 8 + 8 * COALESCE((SELECT (d > 1000) + (d > 2000)
            + (d > 5000) + (d > 10000) + (d > 20000) + (d > 30000) + (d > 60000) + (d > 120000) + (d > 300000)
            + (d > 600000) + (d > 1200000) + (d > 1800000) + (d > 3600000) + (d > 7200000) + (d > 21600000)
            + (d > 43200000) + (d > 86400000) FROM (SELECT NEW.first_status_at - NEW.accepted_at AS d)), 0) END
        + 256 * (NEW.ftd_at IS NOT NULL));
END;
