-- 007_stats_deltas: reserved; filled by the work it names.
SELECT 1;
