-- ci-guard ledger, schema version 14 (PostgreSQL): a per-run rollup of its calls, so reports and the dashboard
-- of a month read the runs table instead of aggregating every call. Written when the run finishes
-- (and for bulk-loaded history), computed from the run's calls in the same transaction; recording a
-- call clears it (rollup_calls back to NULL), so a rollup that exists always matches the calls.
-- NULL for runs recorded before this version and for runs still open: reports read their calls.
--   rollup_calls    calls the rollup covers (0: none)
--   rollup_micros   their cost, micro-dollars
--   rollup_model    the model of every call (served, else requested), NULL when the run used several
--   rollup_ctx_*    context tokens of the first, middle (by seq) and last call

ALTER TABLE runs ADD COLUMN rollup_calls INTEGER;
ALTER TABLE runs ADD COLUMN rollup_micros BIGINT;
ALTER TABLE runs ADD COLUMN rollup_model TEXT;
ALTER TABLE runs ADD COLUMN rollup_ctx_first BIGINT;
ALTER TABLE runs ADD COLUMN rollup_ctx_mid BIGINT;
ALTER TABLE runs ADD COLUMN rollup_ctx_last BIGINT;
