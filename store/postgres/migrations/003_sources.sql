-- 003_sources: held leads, the traffic source columns, pauses, the
-- Sources report's aggregates and the wider throughput counters (issue
-- 11). It converts an existing database in place: the new columns are
-- backfilled from the stored payloads, callbacks and attempts, and the
-- aggregates from the leads as they are.
--
-- No hot rows, as in 001: the report's counters are appended as deltas
-- (source_deltas) by statement-level triggers reading the transition
-- tables, and the fold (store code) merges the committed deltas into
-- source_stats under its advisory lock. Report sums source_stats and the
-- deltas not yet folded. Two writers changing leads of one source each
-- append their own delta rows and never wait on each other.

ALTER TABLE leads DROP CONSTRAINT leads_state_check;
ALTER TABLE leads ADD CONSTRAINT leads_state_check CHECK (state IN ('queued', 'in_flight', 'retry_wait',
    'held', 'accepted', 'duplicate', 'validation_error', 'rejected', 'failed'));

-- The payload's source fields (crm.LeadFields, each cut to 200 bytes),
-- why a held lead is held ('operator', 'source', 'sub_id'; '' when not
-- held), and the times the report's latencies come from (unix ms, NULL
-- before they happen).
ALTER TABLE leads
    ADD COLUMN source          TEXT   NOT NULL DEFAULT '',
    ADD COLUMN funnel          TEXT   NOT NULL DEFAULT '',
    ADD COLUMN sub_id          TEXT   NOT NULL DEFAULT '',
    ADD COLUMN country         TEXT   NOT NULL DEFAULT '',
    ADD COLUMN hold            TEXT   NOT NULL DEFAULT '',
    ADD COLUMN accepted_at     BIGINT,
    ADD COLUMN first_status_at BIGINT,
    ADD COLUMN ftd_at          BIGINT;

-- Pause and Resume find the leads of one source or sub_id that are still
-- to be sent (or held) without reading the whole table.
CREATE INDEX leads_source_live ON leads (source) WHERE state IN ('queued', 'retry_wait', 'held');
CREATE INDEX leads_sub_id_live ON leads (sub_id) WHERE state IN ('queued', 'retry_wait', 'held');

-- lw_group_value is crm.CheckLead's rule for a source field, used to
-- backfill: a string as it is, a number as its JSON text (json, not
-- jsonb, keeps the text as written), anything else ''; cut to 200 bytes
-- at a character boundary. A payload that is not UTF-8 JSON gives ''.
CREATE FUNCTION lw_group_value(p BYTEA, k TEXT) RETURNS TEXT LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    j JSON;
    v JSON;
    s TEXT;
BEGIN
    BEGIN
        j := convert_from(p, 'UTF8')::json;
        IF json_typeof(j) <> 'object' THEN
            RETURN '';
        END IF;
        v := j -> k;
        IF v IS NULL THEN
            RETURN '';
        END IF;
        CASE json_typeof(v)
            WHEN 'string' THEN s := v #>> '{}';
            WHEN 'number' THEN s := v::text;
            ELSE RETURN '';
        END CASE;
    EXCEPTION WHEN others THEN
        RETURN '';
    END;
    s := left(s, 200);
    WHILE octet_length(s) > 200 LOOP
        s := left(s, -1);
    END LOOP;
    RETURN s;
END $$;

-- Triggers of 001 are off while the backfill rewrites every row: the
-- counts per state do not change, and the report's aggregates are built
-- once below, from the result.
ALTER TABLE leads DISABLE TRIGGER leads_count_update;
ALTER TABLE leads DISABLE TRIGGER leads_notify;
UPDATE leads SET
    source  = lw_group_value(payload, 'source'),
    funnel  = lw_group_value(payload, 'funnel'),
    sub_id  = lw_group_value(payload, 'sub_id'),
    country = lw_group_value(payload, 'country'),
    accepted_at = CASE WHEN state = 'accepted' THEN COALESCE(
        (SELECT max(a.started_at) FROM attempts a WHERE a.lead_id = leads.id AND a.outcome = 'accepted'),
        updated_at) END,
    first_status_at = (SELECT min(c.received_at) FROM callbacks c WHERE c.lead_id = leads.id AND c.status <> ''),
    ftd_at = (SELECT min(c.received_at) FROM callbacks c WHERE c.lead_id = leads.id AND lower(c.status) = 'ftd');
ALTER TABLE leads ENABLE TRIGGER leads_count_update;
ALTER TABLE leads ENABLE TRIGGER leads_notify;

-- Pause rules: one per (field, value); at is when it was paused (ms).
CREATE TABLE pauses (
    field TEXT   NOT NULL CHECK (field IN ('source', 'sub_id')),
    value TEXT   NOT NULL,
    at    BIGINT NOT NULL,
    PRIMARY KEY (field, value)
);

-- The report's counters per (field, value, bucket): bucket is the minute
-- the leads were created in (unix ms of its start), or -1 for all time.
-- Each lead counts by its current columns: its final state, whether it
-- has a status (and the latency bucket from acceptance to the first
-- status, h0 .. h17 as crm.LatencyBounds), whether it reached ftd.
CREATE TABLE source_stats (
    field            TEXT   NOT NULL,
    bucket           BIGINT NOT NULL,
    value            TEXT   NOT NULL,
    accepted         BIGINT NOT NULL DEFAULT 0,
    duplicate        BIGINT NOT NULL DEFAULT 0,
    rejected         BIGINT NOT NULL DEFAULT 0,
    validation_error BIGINT NOT NULL DEFAULT 0,
    failed           BIGINT NOT NULL DEFAULT 0,
    with_status      BIGINT NOT NULL DEFAULT 0,
    ftd              BIGINT NOT NULL DEFAULT 0,
    h0  BIGINT NOT NULL DEFAULT 0, h1  BIGINT NOT NULL DEFAULT 0, h2  BIGINT NOT NULL DEFAULT 0,
    h3  BIGINT NOT NULL DEFAULT 0, h4  BIGINT NOT NULL DEFAULT 0, h5  BIGINT NOT NULL DEFAULT 0,
    h6  BIGINT NOT NULL DEFAULT 0, h7  BIGINT NOT NULL DEFAULT 0, h8  BIGINT NOT NULL DEFAULT 0,
    h9  BIGINT NOT NULL DEFAULT 0, h10 BIGINT NOT NULL DEFAULT 0, h11 BIGINT NOT NULL DEFAULT 0,
    h12 BIGINT NOT NULL DEFAULT 0, h13 BIGINT NOT NULL DEFAULT 0, h14 BIGINT NOT NULL DEFAULT 0,
    h15 BIGINT NOT NULL DEFAULT 0, h16 BIGINT NOT NULL DEFAULT 0, h17 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (field, bucket, value)
);

-- The same columns, append-only (no key: many rows per group until
-- folded).
CREATE TABLE source_deltas (LIKE source_stats INCLUDING DEFAULTS);
CREATE INDEX source_deltas_group ON source_deltas (field, bucket);

-- One lead's contribution, signed: +1 for a row as it is now, -1 for the
-- row as it was.
CREATE TYPE lw_contribution AS (
    sign            INTEGER,
    state           TEXT,
    source          TEXT,
    funnel          TEXT,
    sub_id          TEXT,
    country         TEXT,
    created_at      BIGINT,
    accepted_at     BIGINT,
    first_status_at BIGINT,
    ftd_at          BIGINT
);

-- lw_source_add appends the deltas of a set of contributions, summed per
-- group (4 fields x the minute and the all-time bucket), dropping groups
-- whose sum is nothing. PL/pgSQL, not SQL: a session plans its statement
-- once, where an SQL function would plan it at every call (milliseconds,
-- on every write to leads). The latency bucket is the number of bounds below
-- the latency: width_bucket counts the bounds <= its operand, hence - 1
-- on whole milliseconds; a missing acceptance or a negative latency is
-- bucket 0.
CREATE FUNCTION lw_source_add(cs lw_contribution[]) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(cs) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO source_deltas (field, bucket, value, accepted, duplicate, rejected, validation_error, failed,
        with_status, ftd, h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17)
    SELECT * FROM (
        SELECT f.field, b.bucket, f.value,
            sum(c.sign * (c.state = 'accepted')::int) AS accepted,
            sum(c.sign * (c.state = 'duplicate')::int) AS duplicate,
            sum(c.sign * (c.state = 'rejected')::int) AS rejected,
            sum(c.sign * (c.state = 'validation_error')::int) AS validation_error,
            sum(c.sign * (c.state = 'failed')::int) AS failed,
            sum(c.sign * (c.first_status_at IS NOT NULL)::int) AS with_status,
            sum(c.sign * (c.ftd_at IS NOT NULL)::int) AS ftd,
            sum(c.sign * (c.lb = 0)::int) AS h0,
            sum(c.sign * (c.lb = 1)::int) AS h1,
            sum(c.sign * (c.lb = 2)::int) AS h2,
            sum(c.sign * (c.lb = 3)::int) AS h3,
            sum(c.sign * (c.lb = 4)::int) AS h4,
            sum(c.sign * (c.lb = 5)::int) AS h5,
            sum(c.sign * (c.lb = 6)::int) AS h6,
            sum(c.sign * (c.lb = 7)::int) AS h7,
            sum(c.sign * (c.lb = 8)::int) AS h8,
            sum(c.sign * (c.lb = 9)::int) AS h9,
            sum(c.sign * (c.lb = 10)::int) AS h10,
            sum(c.sign * (c.lb = 11)::int) AS h11,
            sum(c.sign * (c.lb = 12)::int) AS h12,
            sum(c.sign * (c.lb = 13)::int) AS h13,
            sum(c.sign * (c.lb = 14)::int) AS h14,
            sum(c.sign * (c.lb = 15)::int) AS h15,
            sum(c.sign * (c.lb = 16)::int) AS h16,
            sum(c.sign * (c.lb = 17)::int) AS h17
        FROM (
            SELECT u.*, CASE
                    WHEN u.first_status_at IS NULL THEN -1
                    WHEN u.accepted_at IS NULL THEN 0
                    ELSE width_bucket(u.first_status_at - u.accepted_at - 1, ARRAY[1000, 2000, 5000, 10000,
                        20000, 30000, 60000, 120000, 300000, 600000, 1200000, 1800000, 3600000, 7200000,
                        21600000, 43200000, 86400000]::bigint[])
                END AS lb
            FROM unnest(cs) AS u
            WHERE u.state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
                OR u.first_status_at IS NOT NULL OR u.ftd_at IS NOT NULL
        ) c
        CROSS JOIN LATERAL (VALUES ('source', c.source), ('funnel', c.funnel), ('sub_id', c.sub_id),
            ('country', c.country)) AS f(field, value)
        CROSS JOIN LATERAL (VALUES (c.created_at - c.created_at % 60000), (-1::bigint)) AS b(bucket)
        GROUP BY f.field, b.bucket, f.value
    ) s
    -- A group whose every sum is zero (a lead that left and came back)
    -- is nothing to add.
    WHERE (s.accepted, s.duplicate, s.rejected, s.validation_error, s.failed, s.with_status, s.ftd,
            s.h0, s.h1, s.h2, s.h3, s.h4, s.h5, s.h6, s.h7, s.h8, s.h9, s.h10, s.h11, s.h12, s.h13,
            s.h14, s.h15, s.h16, s.h17)
        <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
END $$;

-- leads: the report's deltas. An UPDATE contributes only the rows whose
-- counted columns changed (old -1, new +1), so a claim, a lease renewal
-- or a status callback that is not a lead's first status or first ftd
-- appends nothing.
CREATE FUNCTION lw_leads_sourced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM lw_source_add(ARRAY(SELECT ROW(1, state, source, funnel, sub_id, country, created_at,
            accepted_at, first_status_at, ftd_at)::lw_contribution FROM new_rows
            WHERE state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
                OR first_status_at IS NOT NULL OR ftd_at IS NOT NULL));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM lw_source_add(ARRAY(SELECT ROW(-1, state, source, funnel, sub_id, country, created_at,
            accepted_at, first_status_at, ftd_at)::lw_contribution FROM old_rows
            WHERE state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
                OR first_status_at IS NOT NULL OR ftd_at IS NOT NULL));
    ELSE
        -- A claim, a release, a retry scheduled: no row counts before or
        -- after, and the statement is done without a join.
        IF NOT EXISTS (SELECT 1 FROM new_rows
                WHERE state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
                    OR first_status_at IS NOT NULL OR ftd_at IS NOT NULL)
            AND NOT EXISTS (SELECT 1 FROM old_rows
                WHERE state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
                    OR first_status_at IS NOT NULL OR ftd_at IS NOT NULL) THEN
            RETURN NULL;
        END IF;
        PERFORM lw_source_add(ARRAY(
            SELECT ROW(s.sign, s.state, s.source, s.funnel, s.sub_id, s.country, s.created_at,
                s.accepted_at, s.first_status_at, s.ftd_at)::lw_contribution
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES
                (-1, o.state, o.source, o.funnel, o.sub_id, o.country, o.created_at, o.accepted_at, o.first_status_at, o.ftd_at),
                (1, n.state, n.source, n.funnel, n.sub_id, n.country, n.created_at, n.accepted_at, n.first_status_at, n.ftd_at))
                AS s(sign, state, source, funnel, sub_id, country, created_at, accepted_at, first_status_at, ftd_at)
            WHERE (o.state, o.source, o.funnel, o.sub_id, o.country, o.created_at, o.accepted_at, o.first_status_at, o.ftd_at)
                IS DISTINCT FROM
                (n.state, n.source, n.funnel, n.sub_id, n.country, n.created_at, n.accepted_at, n.first_status_at, n.ftd_at)));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER leads_source_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lw_leads_sourced();
CREATE TRIGGER leads_source_update AFTER UPDATE ON leads
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lw_leads_sourced();
CREATE TRIGGER leads_source_delete AFTER DELETE ON leads
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lw_leads_sourced();

-- The existing leads' aggregates, straight into source_stats.
SELECT lw_source_add(ARRAY(SELECT ROW(1, state, source, funnel, sub_id, country, created_at,
    accepted_at, first_status_at, ftd_at)::lw_contribution FROM leads
    WHERE state IN ('accepted', 'duplicate', 'rejected', 'validation_error', 'failed')
        OR first_status_at IS NOT NULL OR ftd_at IS NOT NULL));
INSERT INTO source_stats SELECT * FROM source_deltas;
DELETE FROM source_deltas;

-- Throughput: the answered sends (an HTTP status came back), the
-- attempts that ended accepted or failed, and the refusals, per second.
--
-- The fold no longer rewrites throughput_deltas in place (every second of
-- history deleted and inserted again every few seconds): it moves the
-- committed deltas into throughput_seconds and, summed by the minute,
-- throughput_minutes, by upsert, as it does source_deltas into
-- source_stats. throughput_deltas holds only what was appended since the
-- last fold; readers sum the two in one statement. A day's chart by the
-- minute reads 1,440 rows of throughput_minutes, the pulse at most 3,600
-- of throughput_seconds.
ALTER TABLE throughput_deltas
    ADD COLUMN answered BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN accepted BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN failed   BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN refused  BIGINT NOT NULL DEFAULT 0;

CREATE TABLE throughput_seconds (
    sec       BIGINT PRIMARY KEY,                 -- unix seconds
    sent      BIGINT NOT NULL DEFAULT 0,
    callbacks BIGINT NOT NULL DEFAULT 0,
    answered  BIGINT NOT NULL DEFAULT 0,
    accepted  BIGINT NOT NULL DEFAULT 0,
    failed    BIGINT NOT NULL DEFAULT 0,
    refused   BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE throughput_minutes (
    minute    BIGINT PRIMARY KEY,                 -- unix seconds / 60
    sent      BIGINT NOT NULL DEFAULT 0,
    callbacks BIGINT NOT NULL DEFAULT 0,
    answered  BIGINT NOT NULL DEFAULT 0,
    accepted  BIGINT NOT NULL DEFAULT 0,
    failed    BIGINT NOT NULL DEFAULT 0,
    refused   BIGINT NOT NULL DEFAULT 0
);

-- Backfill, best effort: the new counters from the attempts and refusals
-- still stored (pruned ones are gone); then everything moves to the
-- folded tables.
INSERT INTO throughput_deltas (sec, answered, accepted, failed)
    SELECT started_at / 1000, count(*) FILTER (WHERE http_status > 0),
        count(*) FILTER (WHERE outcome = 'accepted'), count(*) FILTER (WHERE outcome = 'failed')
    FROM attempts WHERE kind = 'send' GROUP BY started_at / 1000;
INSERT INTO throughput_deltas (sec, refused)
    SELECT at / 1000, count(*) FROM refusals GROUP BY at / 1000;
INSERT INTO throughput_seconds (sec, sent, callbacks, answered, accepted, failed, refused)
    SELECT sec, sum(sent), sum(callbacks), sum(answered), sum(accepted), sum(failed), sum(refused)
    FROM throughput_deltas GROUP BY sec;
INSERT INTO throughput_minutes (minute, sent, callbacks, answered, accepted, failed, refused)
    SELECT sec / 60, sum(sent), sum(callbacks), sum(answered), sum(accepted), sum(failed), sum(refused)
    FROM throughput_deltas GROUP BY sec / 60;
DELETE FROM throughput_deltas;

CREATE OR REPLACE FUNCTION lw_callbacks_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO count_deltas (name, n)
            SELECT name, n FROM (
                SELECT 'callbacks' AS name, count(*) AS n FROM new_rows
                UNION ALL
                SELECT 'callbacks_unmatched', count(*) FROM new_rows WHERE lead_id IS NULL) s
            WHERE n <> 0;
        INSERT INTO throughput_deltas (sec, callbacks)
            SELECT received_at / 1000, count(*) FROM new_rows GROUP BY received_at / 1000;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO count_deltas (name, n)
            SELECT name, n FROM (
                SELECT 'callbacks' AS name, -count(*) AS n FROM old_rows
                UNION ALL
                SELECT 'callbacks_unmatched', -count(*) FROM old_rows WHERE lead_id IS NULL) s
            WHERE n <> 0;
    ELSE
        INSERT INTO count_deltas (name, n)
            SELECT 'callbacks_unmatched', n FROM (
                SELECT (SELECT count(*) FROM new_rows WHERE lead_id IS NULL)
                     - (SELECT count(*) FROM old_rows WHERE lead_id IS NULL) AS n) s
            WHERE n <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION lw_attempts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO throughput_deltas (sec, sent, answered, accepted, failed)
        SELECT started_at / 1000, count(*), count(*) FILTER (WHERE http_status > 0),
            count(*) FILTER (WHERE outcome = 'accepted'), count(*) FILTER (WHERE outcome = 'failed')
        FROM new_rows WHERE kind = 'send' GROUP BY started_at / 1000;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION lw_refusals_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO count_deltas (name, n)
            SELECT 'refusals', count(*) FROM new_rows HAVING count(*) > 0;
        INSERT INTO throughput_deltas (sec, refused)
            SELECT at / 1000, count(*) FROM new_rows GROUP BY at / 1000;
    ELSE
        INSERT INTO count_deltas (name, n)
            SELECT 'refusals', -count(*) FROM old_rows HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;

-- lw_pause_hold is why a lead with this source and sub_id would be held
-- by a pause: 'source' (it wins), 'sub_id', or '' when neither is paused.
CREATE FUNCTION lw_pause_hold(src TEXT, sub TEXT) RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM pauses WHERE field = 'source' AND value = src) THEN 'source'
        WHEN EXISTS (SELECT 1 FROM pauses WHERE field = 'sub_id' AND value = sub) THEN 'sub_id'
        ELSE '' END
$$;
