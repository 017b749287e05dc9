-- 010_callback_timestamp_type: whether the CRM sent a callback's timestamp
-- as a JSON number (1764237600) or a string ("1764237600"). The timestamp
-- column keeps the digits either way, since the dedup key treats the two as
-- one value (docs/protocol.md §3); export and tail --json write it back as
-- the type it came in, so a consumer that reads numbers gets numbers.
ALTER TABLE callbacks ADD COLUMN ts_number INTEGER NOT NULL DEFAULT 0;

-- The rows stored before this column learn their type from the raw body,
-- where prune or forget has not dropped it (those stay strings: nothing
-- says otherwise). The body is read as text: SQLite's JSON functions take
-- a BLOB for JSONB, which the listener's bytes are not. CASE, unlike AND,
-- guarantees json_type never sees a body json_valid refused (a signed body
-- is a JSON object, but a row written by hand or by an old bug may not be).
UPDATE callbacks SET ts_number = 1
WHERE length(raw_body) > 0
  AND CASE WHEN json_valid(CAST(raw_body AS TEXT))
           THEN json_type(CAST(raw_body AS TEXT), '$.timestamp') IN ('integer', 'real')
           ELSE 0 END;
