-- 008_reconcile: reserved; filled by the work it names.
SELECT 1;
