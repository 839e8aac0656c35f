-- ci-guard ledger, schema version 1 (PostgreSQL; tables live in the schema named by ?schema=).
-- Money is BIGINT micro-dollars; times are TIMESTAMPTZ.

CREATE TABLE runs (
  run_id                TEXT PRIMARY KEY,
  started_at            TIMESTAMPTZ NOT NULL,
  ended_at              TIMESTAMPTZ,
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
  enforced              BOOLEAN NOT NULL DEFAULT TRUE,
  turns                 BIGINT NOT NULL DEFAULT 0,
  tool_calls            BIGINT NOT NULL DEFAULT 0,
  cost_micros           BIGINT NOT NULL DEFAULT 0,
  input_tokens          BIGINT NOT NULL DEFAULT 0,
  cache_write_tokens    BIGINT NOT NULL DEFAULT 0,
  cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
  cache_read_tokens     BIGINT NOT NULL DEFAULT 0,
  output_tokens         BIGINT NOT NULL DEFAULT 0,
  reasoning_tokens      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_started_idx ON runs (started_at);
CREATE INDEX runs_repo_pr_idx ON runs (repo, pr, started_at);

CREATE TABLE calls (
  run_id                TEXT NOT NULL,
  seq                   BIGINT NOT NULL,
  started_at            TIMESTAMPTZ NOT NULL,
  ended_at              TIMESTAMPTZ NOT NULL,
  provider              TEXT NOT NULL,
  endpoint              TEXT NOT NULL,
  model_requested       TEXT,
  model_served          TEXT,
  input_tokens          BIGINT NOT NULL DEFAULT 0,
  cache_write_tokens    BIGINT NOT NULL DEFAULT 0,
  cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
  cache_read_tokens     BIGINT NOT NULL DEFAULT 0,
  output_tokens         BIGINT NOT NULL DEFAULT 0,
  reasoning_tokens      BIGINT NOT NULL DEFAULT 0,
  cost_micros           BIGINT NOT NULL DEFAULT 0,
  status                TEXT NOT NULL,
  http_status           INTEGER,
  stream                BOOLEAN NOT NULL DEFAULT FALSE,
  tool_calls            BIGINT NOT NULL DEFAULT 0,
  context_tokens        BIGINT NOT NULL DEFAULT 0,
  latency_ms            DOUBLE PRECISION NOT NULL DEFAULT 0,
  fingerprint           TEXT,
  error                 TEXT,
  session_id            TEXT,
  is_turn               BOOLEAN NOT NULL DEFAULT TRUE,
  PRIMARY KEY (run_id, seq)
);
CREATE INDEX calls_started_idx ON calls (started_at);

-- which budget buckets a run's calls count against (fixed when the run starts)
CREATE TABLE run_budget_keys (
  run_id       TEXT NOT NULL,
  budget       TEXT NOT NULL,
  scope_key    TEXT NOT NULL,
  period_start TIMESTAMPTZ NOT NULL,
  period_end   TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (run_id, budget, scope_key, period_start)
);

-- spend per budget bucket, kept in step with calls so reads never scan calls
CREATE TABLE budget_rollups (
  budget       TEXT NOT NULL,
  scope_key    TEXT NOT NULL,
  period_start TIMESTAMPTZ NOT NULL,
  period_end   TIMESTAMPTZ NOT NULL,
  limit_micros BIGINT NOT NULL DEFAULT 0,
  spent_micros BIGINT NOT NULL DEFAULT 0,
  calls        BIGINT NOT NULL DEFAULT 0,
  runs         BIGINT NOT NULL DEFAULT 0,
  updated_at   TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (budget, scope_key, period_start)
);

-- a run's worst case held against each bucket; outstanding = amount - used while unsettled and unexpired
CREATE TABLE reservations (
  run_id        TEXT NOT NULL,
  budget        TEXT NOT NULL,
  scope_key     TEXT NOT NULL,
  period_start  TIMESTAMPTZ NOT NULL,
  amount_micros BIGINT NOT NULL,
  used_micros   BIGINT NOT NULL DEFAULT 0,
  expires_at    TIMESTAMPTZ NOT NULL,
  settled       BOOLEAN NOT NULL DEFAULT FALSE,
  created_at    TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (run_id, budget, scope_key, period_start)
);
CREATE INDEX reservations_open_idx ON reservations (budget, scope_key, period_start) WHERE NOT settled;
