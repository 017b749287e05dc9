-- 012_dedup_by_time: the listener's insert no longer lands on a page of
-- its own in every index (issue 9's speed budget). The dedup index led with
-- internal_id, which a CRM spreads over all its leads: the 21 events of a
-- group commit each dirtied a leaf page of their own, and every such page
-- cost a WAL frame at the commit and a write at the next checkpoint.
--
-- The unique index now leads with the timestamp, which grows with the
-- events: a commit's keys are neighbours on one or two leaf pages. It is
-- the same triple, compared part by part, so what counts as a replay does
-- not change (docs/protocol.md §3); only the order of its entries does.
DROP INDEX IF EXISTS callbacks_dedup;
CREATE UNIQUE INDEX callbacks_dedup ON callbacks (timestamp, event, internal_id);

-- Late linking (a callback that names a CRM id before the attempt that
-- learned the id is recorded) found unlinked callbacks through the old
-- index's internal_id. It now reads the unlinked callbacks received since
-- the lead was created, in arrival order: this index grows at its end as
-- callbacks arrive, and a callback leaves it when it is linked.
CREATE INDEX IF NOT EXISTS callbacks_unlinked ON callbacks (received_at, internal_id) WHERE lead_id IS NULL;

-- A lead's timeline reads its callbacks by lead_id (always a value there),
-- so the index keeps only linked callbacks: an unmatched one, all a
-- callback costs when it names no lead yet, no longer adds an entry.
DROP INDEX IF EXISTS callbacks_lead;
CREATE INDEX callbacks_lead ON callbacks (lead_id, id) WHERE lead_id IS NOT NULL;
