-- ci-guard ledger, schema version 8 (SQLite): outcomes per pull/merge request (every run of the PR
-- inherits it in reports unless the run has its own), tests fixed by a run, and the alerts already
-- sent (one row per alert key, so two jobs crossing the same threshold at once send one alert).

CREATE TABLE pr_outcomes (
  repo         TEXT NOT NULL,
  pr           INTEGER NOT NULL,
  outcome      TEXT NOT NULL,
  recorded_at  TEXT NOT NULL,
  PRIMARY KEY (repo, pr)
);

ALTER TABLE runs ADD COLUMN tests_fixed INTEGER;
-- the CI job's page, for links from the dashboard and reports
ALTER TABLE runs ADD COLUMN run_url TEXT;

CREATE TABLE alerts_sent (
  alert_key     TEXT PRIMARY KEY,
  kind          TEXT NOT NULL,
  subject       TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  delivered_at  TEXT,
  attempts      INTEGER NOT NULL DEFAULT 0,
  last_error    TEXT
);
