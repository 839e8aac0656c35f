"""The ledger: runs, calls, budget rollups and reservations (SQLite or PostgreSQL)."""
