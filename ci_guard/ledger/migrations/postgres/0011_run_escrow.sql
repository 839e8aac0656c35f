-- ci-guard ledger, schema version 11 (PostgreSQL): a run's escrow. A run's calls add their cost to its own
-- reservation rows (escrow_micros, escrow_calls) instead of the organisation-wide budget_rollups rows,
-- so parallel runs of one budget no longer queue on the same rows; settling the run (or its expiry)
-- moves the escrow into the rollups exactly once. Spent = rollup + escrow of unsettled reservations.
-- Reservations open before this version have escrow 0: their spend is in the rollups already.
-- (A run's rows are found by the primary key, which starts with run_id: no new index.)

ALTER TABLE reservations ADD COLUMN escrow_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN escrow_calls BIGINT NOT NULL DEFAULT 0;
