-- 002_throughput: sends and callbacks counted per second, kept by triggers
-- in the same transaction as the rows, so the header's sparklines read one
-- row per second of their window instead of every attempt and callback in
-- it (at 1,000 callbacks/s an hour is 3.6 million rows; this is 3,600).
-- The counts record what happened: deleting history does not lower them.

CREATE TABLE throughput (
    sec       INTEGER PRIMARY KEY,                -- unix seconds
    sent      INTEGER NOT NULL DEFAULT 0,         -- attempts of kind send started in that second
    callbacks INTEGER NOT NULL DEFAULT 0          -- callbacks received in that second
);

INSERT INTO throughput (sec, sent)
    SELECT started_at / 1000, COUNT(*) FROM attempts WHERE kind = 'send' GROUP BY started_at / 1000;
INSERT INTO throughput (sec, callbacks)
    SELECT received_at / 1000, COUNT(*) FROM callbacks WHERE true GROUP BY received_at / 1000
    ON CONFLICT (sec) DO UPDATE SET callbacks = excluded.callbacks;

CREATE TRIGGER attempts_throughput AFTER INSERT ON attempts
WHEN NEW.kind = 'send'
BEGIN
    INSERT INTO throughput (sec, sent) VALUES (NEW.started_at / 1000, 1)
        ON CONFLICT (sec) DO UPDATE SET sent = sent + 1;
END;

CREATE TRIGGER callbacks_throughput AFTER INSERT ON callbacks
BEGIN
    INSERT INTO throughput (sec, callbacks) VALUES (NEW.received_at / 1000, 1)
        ON CONFLICT (sec) DO UPDATE SET callbacks = callbacks + 1;
END;

-- Throughput no longer ranges over the rows; their time indexes only slowed
-- every insert (the listener's hot path).
DROP INDEX attempts_kind_started;
DROP INDEX callbacks_received;
