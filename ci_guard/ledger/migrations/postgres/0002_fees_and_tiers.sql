-- ci-guard ledger, schema version 2 (PostgreSQL): billed server-side web searches per call and run, and the
-- service tier that served each call. A search's fee and a tier's price are part of cost_micros
-- already; these columns say where that part of the cost came from.

ALTER TABLE runs ADD COLUMN web_searches INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN web_searches INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN service_tier TEXT;
