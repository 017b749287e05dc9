-- 002_notify: the change signal and the health probe's row.
--
-- Every statement that changes what the dashboard shows (leads, attempts,
-- callbacks, refusals) sends a NOTIFY on leadwatch_changes. A NOTIFY is
-- delivered when its transaction commits, and equal notifications of one
-- transaction are folded into one, so a transaction signals once however
-- many statements it ran. The payload is empty: listeners re-read.

CREATE FUNCTION lw_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('leadwatch_changes', '');
    RETURN NULL;
END $$;

CREATE TRIGGER leads_notify AFTER INSERT OR UPDATE OR DELETE ON leads
    FOR EACH STATEMENT EXECUTE FUNCTION lw_notify_change();
CREATE TRIGGER attempts_notify AFTER INSERT OR UPDATE OR DELETE ON attempts
    FOR EACH STATEMENT EXECUTE FUNCTION lw_notify_change();
CREATE TRIGGER callbacks_notify AFTER INSERT OR UPDATE OR DELETE ON callbacks
    FOR EACH STATEMENT EXECUTE FUNCTION lw_notify_change();
CREATE TRIGGER refusals_notify AFTER INSERT OR UPDATE OR DELETE ON refusals
    FOR EACH STATEMENT EXECUTE FUNCTION lw_notify_change();

-- Health's write probe: one committed one-row update (no notify).
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at BIGINT  NOT NULL
);
INSERT INTO health_probe (id, at) VALUES (1, 0);
