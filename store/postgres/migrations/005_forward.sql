-- 005_forward: reserved; filled by the work it names.
SELECT 1;
