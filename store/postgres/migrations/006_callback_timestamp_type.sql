-- 006_callback_timestamp_type: whether the CRM sent a callback's timestamp
-- as a JSON number (1764237600) or a string ("1764237600"). The timestamp
-- column keeps the digits either way, since the dedup key treats the two as
-- one value (docs/protocol.md §3); export and tail --json write it back as
-- the type it came in, so a consumer that reads numbers gets numbers.
ALTER TABLE callbacks ADD COLUMN ts_number BOOLEAN NOT NULL DEFAULT false;

-- The rows stored before this column learn their type from the raw body,
-- where prune or forget has not dropped it (those stay strings: nothing
-- says otherwise). raw_body is bytea holding the bytes as signed: they need
-- not be UTF-8 (the listener keeps invalid bytes inside strings) and, for
-- a row not written by the listener, need not be JSON, and either makes
-- convert_from or the json cast raise. The function answers false for such
-- a body instead of failing the migration; it lives in pg_temp, so nothing
-- of it outlives this session. json, not jsonb: jsonb refuses \u0000,
-- which a signed body may carry.
CREATE FUNCTION pg_temp.lw_ts_number(body bytea) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RETURN json_typeof(convert_from(body, 'UTF8')::json -> 'timestamp') = 'number';
EXCEPTION WHEN OTHERS THEN
    RETURN false;
END $$;

UPDATE callbacks SET ts_number = true
WHERE length(raw_body) > 0 AND pg_temp.lw_ts_number(raw_body);

DROP FUNCTION pg_temp.lw_ts_number(bytea);
