"""`ci-guard demo`: a full rehearsal on the built-in simulator with an embedded SQLite ledger."""
