-- 011_dashboard: the Sources report over a window at a bounded cost
-- (issue 11's 10 ms at 1,000,000 leads). A window's report summed
-- source_stats' minutes since its start: a day by country was 1,440
-- minutes of every country, about 16,000 rows at 1M (40-50 ms), and
-- more values (sub_ids by the thousand) would multiply it. Now the sums
-- are also kept per 10 minutes, hour and day (span, in ms; bucket: the
-- span's start), and a window [since, now] reads the minutes up to the
-- next 10 minutes' start, the 10 minutes up to the next hour, the hours
-- up to the next day and the days from there: at most 9 + 5 + 23 rows
-- and the days, per value (store.ReportRanges).
--
-- Only the fold and Fill write these rows, with source_stats' minutes
-- (stats.go: statsAcc.flush), so the triggers on leads, and every
-- insert and update of a lead, do no more than before.
CREATE TABLE source_stats_coarse (
    field            TEXT    NOT NULL,
    span             INTEGER NOT NULL,
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
    PRIMARY KEY (field, span, bucket, value)
) WITHOUT ROWID;

-- The existing minutes, summed into each span.
INSERT INTO source_stats_coarse (field, span, bucket, value, accepted, duplicate, rejected, validation_error,
        failed, with_status, ftd, h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17)
    SELECT field, span, bucket / span * span, value, SUM(accepted), SUM(duplicate), SUM(rejected),
        SUM(validation_error), SUM(failed), SUM(with_status), SUM(ftd), SUM(h0), SUM(h1), SUM(h2), SUM(h3),
        SUM(h4), SUM(h5), SUM(h6), SUM(h7), SUM(h8), SUM(h9), SUM(h10), SUM(h11), SUM(h12), SUM(h13), SUM(h14),
        SUM(h15), SUM(h16), SUM(h17)
    FROM source_stats, (SELECT 600000 AS span UNION ALL SELECT 3600000 UNION ALL SELECT 86400000)
    WHERE bucket >= 0
    GROUP BY field, span, bucket / span * span, value;
