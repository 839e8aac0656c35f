-- ci-guard ledger, schema version 12 (SQLite): who owns a running run. The process that meters a run
-- (`ci-guard run`, or the detached proxy of `ci-guard start`) records its pid, that process's start
-- time (which tells a reused pid apart) and its host (hostname, boot id and pid namespace), so the
-- next ci-guard command on the same host closes a run whose owner died (SIGKILL, OOM) from the ledger
-- alone: never from a file in the workspace, which the agent can write (issue 12).

ALTER TABLE runs ADD COLUMN owner_pid BIGINT;
ALTER TABLE runs ADD COLUMN owner_started TEXT;
ALTER TABLE runs ADD COLUMN owner_host TEXT;
CREATE INDEX IF NOT EXISTS runs_running_owner ON runs (owner_host) WHERE status = 'running';
