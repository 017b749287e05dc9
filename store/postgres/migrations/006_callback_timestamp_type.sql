-- 006_callback_timestamp_type: reserved; filled by the work it names.
SELECT 1;
