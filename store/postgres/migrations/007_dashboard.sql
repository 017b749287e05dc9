-- 007_dashboard: the Sources report over a window at a bounded cost
-- (issue 11's 10 ms at 1,000,000 leads). A window's report summed
-- source_stats' minutes since its start: a day by sub_id is 1,440
-- minutes of every sub_id. Now the fold also keeps the sums per 10
-- minutes, hour and day (span, in ms; bucket: the span's start), and a
-- window [since, now] reads the minutes up to the next 10 minutes'
-- start, the 10 minutes up to the next hour, the hours up to the next
-- day and the days from there: at most 9 + 5 + 23 rows and the days, per
-- value (store.ReportRanges).
--
-- Only the fold writes these rows (counts.go: sqlFoldSources), from the
-- deltas it merges into source_stats: the triggers on leads, and every
-- write of a lead, do no more than before.
CREATE TABLE source_stats_coarse (
    field            TEXT   NOT NULL,
    span             BIGINT NOT NULL,
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
    PRIMARY KEY (field, span, bucket, value)
);

-- The folded minutes, summed into each span (the deltas not yet folded
-- get theirs when they are).
INSERT INTO source_stats_coarse (field, span, bucket, value, accepted, duplicate, rejected, validation_error,
        failed, with_status, ftd, h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17)
    SELECT s.field, sp.span, s.bucket - s.bucket % sp.span, s.value, sum(accepted), sum(duplicate), sum(rejected),
        sum(validation_error), sum(failed), sum(with_status), sum(ftd), sum(h0), sum(h1), sum(h2), sum(h3),
        sum(h4), sum(h5), sum(h6), sum(h7), sum(h8), sum(h9), sum(h10), sum(h11), sum(h12), sum(h13), sum(h14),
        sum(h15), sum(h16), sum(h17)
    FROM source_stats s CROSS JOIN (VALUES (600000::bigint), (3600000), (86400000)) AS sp(span)
    WHERE s.bucket >= 0
    GROUP BY s.field, sp.span, s.bucket - s.bucket % sp.span, s.value;
