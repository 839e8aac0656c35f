-- ci-guard ledger, schema version 1 (SQLite).
-- Money is integer micro-dollars; times are UTC ISO-8601 text ("2026-05-01T12:00:00.000000Z"),
-- which sorts and compares correctly as text because the format is fixed.

CREATE TABLE runs (
  run_id                TEXT PRIMARY KEY,
  started_at            TEXT NOT NULL,
  ended_at              TEXT,
  decision              TEXT NOT NULL,
  status                TEXT NOT NULL,
  org                   TEXT,
  team                  TEXT,
  repo                  TEXT,
  actor                 TEXT,
  workflow              TEXT,
  agent                 TEXT,
  environment           TEXT,
  trigger_name          TEXT,
  pr                    INTEGER,
  branch                TEXT,
  cohort                TEXT,
  platform              TEXT,
  rule                  TEXT,
  reason                TEXT,
  model                 TEXT,
  limits_json           TEXT NOT NULL DEFAULT '{}',
  stop_reason           TEXT,
  outcome               TEXT,
  agent_exit_code       INTEGER,
  session_id            TEXT,
  enforced              INTEGER NOT NULL DEFAULT 1,
  turns                 INTEGER NOT NULL DEFAULT 0,
  tool_calls            INTEGER NOT NULL DEFAULT 0,
  cost_micros           INTEGER NOT NULL DEFAULT 0,
  input_tokens          INTEGER NOT NULL DEFAULT 0,
  cache_write_tokens    INTEGER NOT NULL DEFAULT 0,
  cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
  output_tokens         INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_started_idx ON runs (started_at);
CREATE INDEX runs_repo_pr_idx ON runs (repo, pr, started_at);

CREATE TABLE calls (
  run_id                TEXT NOT NULL,
  seq                   INTEGER NOT NULL,
  started_at            TEXT NOT NULL,
  ended_at              TEXT NOT NULL,
  provider              TEXT NOT NULL,
  endpoint              TEXT NOT NULL,
  model_requested       TEXT,
  model_served          TEXT,
  input_tokens          INTEGER NOT NULL DEFAULT 0,
  cache_write_tokens    INTEGER NOT NULL DEFAULT 0,
  cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
  output_tokens         INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens      INTEGER NOT NULL DEFAULT 0,
  cost_micros           INTEGER NOT NULL DEFAULT 0,
  status                TEXT NOT NULL,
  http_status           INTEGER,
  stream                INTEGER NOT NULL DEFAULT 0,
  tool_calls            INTEGER NOT NULL DEFAULT 0,
  context_tokens        INTEGER NOT NULL DEFAULT 0,
  latency_ms            REAL NOT NULL DEFAULT 0,
  fingerprint           TEXT,
  error                 TEXT,
  session_id            TEXT,
  is_turn               INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (run_id, seq)
);
CREATE INDEX calls_started_idx ON calls (started_at);

-- which budget buckets a run's calls count against (fixed when the run starts)
CREATE TABLE run_budget_keys (
  run_id       TEXT NOT NULL,
  budget       TEXT NOT NULL,
  scope_key    TEXT NOT NULL,
  period_start TEXT NOT NULL,
  period_end   TEXT NOT NULL,
  PRIMARY KEY (run_id, budget, scope_key, period_start)
);

-- spend per budget bucket, kept in step with calls so reads never scan calls
CREATE TABLE budget_rollups (
  budget       TEXT NOT NULL,
  scope_key    TEXT NOT NULL,
  period_start TEXT NOT NULL,
  period_end   TEXT NOT NULL,
  limit_micros INTEGER NOT NULL DEFAULT 0,
  spent_micros INTEGER NOT NULL DEFAULT 0,
  calls        INTEGER NOT NULL DEFAULT 0,
  runs         INTEGER NOT NULL DEFAULT 0,
  updated_at   TEXT NOT NULL,
  PRIMARY KEY (budget, scope_key, period_start)
);

-- a run's worst case held against each bucket; outstanding = amount - used while unsettled and unexpired
CREATE TABLE reservations (
  run_id        TEXT NOT NULL,
  budget        TEXT NOT NULL,
  scope_key     TEXT NOT NULL,
  period_start  TEXT NOT NULL,
  amount_micros INTEGER NOT NULL,
  used_micros   INTEGER NOT NULL DEFAULT 0,
  expires_at    TEXT NOT NULL,
  settled       INTEGER NOT NULL DEFAULT 0,
  created_at    TEXT NOT NULL,
  PRIMARY KEY (run_id, budget, scope_key, period_start)
);
CREATE INDEX reservations_open_idx ON reservations (budget, scope_key, period_start) WHERE settled = 0;
