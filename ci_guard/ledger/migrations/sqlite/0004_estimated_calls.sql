-- ci-guard ledger, schema version 4 (SQLite): calls whose usage the provider did not report
-- (an answer without usage, a stream cut before its final event) are priced from an estimate --
-- the request's input estimate and the output bytes received -- and marked here, so a report can
-- say which part of the cost is estimated. Such a call is never recorded at $0.

ALTER TABLE calls ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
