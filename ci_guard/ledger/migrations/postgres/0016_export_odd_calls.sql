-- ci-guard ledger, schema version 16: an index of the calls whose FOCUS export line PostgreSQL does
-- not write itself (report/focus_sql.py odd_sql(): a value CSV must quote or holding a %, a run ID
-- with a quote, comma, line break, % or parenthesis, a service tier JSON must escape, a context
-- policy's tags). `ledger export` reads those first; with this partial index that is a look at the
-- few such calls (usually none) instead of a scan of the month with regular expressions (~0.7 s per
-- million calls). The predicate must stay the query's condition, word for word as PostgreSQL parses
-- it, or the planner scans as before (tests/ledger/test_export.py checks that it is used).
-- Built once, on upgrade: CREATE INDEX holds off inserts into calls meanwhile (~1 s per million calls).

CREATE INDEX IF NOT EXISTS calls_export_odd ON calls (started_at) WHERE
    context_json IS NOT NULL
    OR (service_tier IS NOT NULL AND NOT (service_tier !~ '["\\\x01-\x1f]' AND strpos(service_tier, '%%') = 0))
    OR provider || COALESCE(model_served, '') || COALESCE(model_requested, '') || endpoint || status ~ E'[",\n\r%%]'
    OR run_id ~ E'[",\n\r%%()]';
