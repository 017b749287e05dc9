-- 008_tail: a complete tail --all (issue 12 item 5). Refusals and forward
-- attempts get the callbacks' txid column (001): RefusalsAfter and
-- ForwardAttemptsAfter return only rows whose transaction is older than
-- every one still running (sqlCursorBound), and their inserts draw ids
-- and xids in the same order (refusalOrderLock, attemptOrderLock), so a
-- cursor never steps past a row still committing below it.
--
-- The rows stored before take xid 0, older than any transaction: they are
-- final. A constant default adds the column without rewriting the table;
-- new rows then take their transaction's id.
ALTER TABLE refusals ADD COLUMN txid xid8 NOT NULL DEFAULT '0';
ALTER TABLE refusals ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
ALTER TABLE forward_attempts ADD COLUMN txid xid8 NOT NULL DEFAULT '0';
ALTER TABLE forward_attempts ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
