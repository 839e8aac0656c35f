-- ci-guard ledger, schema version 9 (SQLite): what a run's policy decision saw, so `ci-guard what-if` can
-- decide it again exactly as the live check did: the run context before team resolution and the budget
-- statuses read for the decision (JSON written by ci_guard.policy.inputs: redacted, ASCII-only, size-capped).
-- NULL for runs recorded before this version; what-if replays those from the other columns (approximated).

ALTER TABLE runs ADD COLUMN decision_inputs_json TEXT;
