-- ci-guard ledger, schema version 2 (PostgreSQL): billed server-side web searches per call and run.
-- Their fee is part of cost_micros already; the count says where that part of the cost came from.

ALTER TABLE runs ADD COLUMN web_searches INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN web_searches INTEGER NOT NULL DEFAULT 0;
