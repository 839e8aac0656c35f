-- ci-guard ledger, schema version 7 (PostgreSQL): what the context policy changed in each call (JSON:
-- breakpoints added, tokens pruned or cleared, route, thinking clamp, method) and what it saved, per
-- call and summed per run. The saving is not part of cost_micros: it is money that was not spent.

ALTER TABLE calls ADD COLUMN context_json TEXT;
ALTER TABLE calls ADD COLUMN context_saved_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN context_saved_micros BIGINT NOT NULL DEFAULT 0;
